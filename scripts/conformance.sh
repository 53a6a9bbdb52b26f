#!/usr/bin/env bash
# Run the official MCP conformance suite's server scenarios against a URL and
# print one verdict per scenario (PASS / FAIL / NO_VERDICT) with the failed and
# warned checks under it.
#
# Usage:
#   scripts/conformance.sh http://127.0.0.1:8931/mcp                 # all 32 server scenarios
#   scripts/conformance.sh http://127.0.0.1:8931/mcp --scenario ping # one scenario
#   scripts/conformance.sh URL --results DIR                         # keep the raw checks.json files
#   scripts/conformance.sh URL --json                                # verdicts as JSON
#   scripts/conformance.sh --fixture                                 # start our fixture server and test it
#   scripts/conformance.sh --gateway                                 # vsm-mcp serve fronting the fixture (stdio)
#   VSM_MCP_TOKEN=$(vsm-mcp token show) scripts/conformance.sh URL  # a running gateway (it wants a token)
#
# The suite cannot send request headers, and vsm-mcp's HTTP face answers 401 without
# `Authorization: Bearer <token>`: with --gateway (its admin token) or with VSM_MCP_TOKEN set,
# the suite talks to tests/conformance/bearer_proxy.py, a loopback proxy that adds the token
# and forwards everything else unchanged (the suite's Host/Origin probes included).
#
# Installs Node 22 and the pinned suite into .tools/ on first use
# (scripts/install-node22.sh). Exit status: 0 when no scenario FAILS, 1 otherwise,
# 2 when the suite cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${ROOT}/.venv/bin/python"
[ -x "${PYTHON}" ] || PYTHON="$(command -v python3)"

if [ "$#" -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

# wait_for_line LOG PATTERN PID: print the first URL on a LOG line matching PATTERN (30 s at most).
wait_for_line() {
  local log="$1" pattern="$2" pid="$3"
  for _ in $(seq 1 300); do
    if grep -q "${pattern}" "${log}"; then
      grep "${pattern}" "${log}" | head -n 1 | grep -o 'http://[^ ]*'
      return 0
    fi
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  echo "conformance: no '${pattern}' line from pid ${pid}:" >&2
  cat "${log}" >&2
  return 1
}

case "$1" in
  --fixture)
    shift
    LOG="$(mktemp)"
    # The fixture binds a free port itself and prints "listening URL" once it accepts connections.
    "${PYTHON}" "${ROOT}/tests/fixtures/conformance_server.py" --http 127.0.0.1:0 >"${LOG}" 2>&1 &
    SERVER_PID=$!
    trap 'kill "${SERVER_PID}" 2>/dev/null || true; rm -f "${LOG}"' EXIT
    URL="$(wait_for_line "${LOG}" '^listening ' "${SERVER_PID}")"
    echo "fixture server: ${URL}" >&2
    "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
    exit $?
    ;;
  --gateway)
    shift
    STATE="$(mktemp -d)"
    printf '[servers.conformance]\ncommand = "%s"\nargs = ["%s", "--stdio"]\nnamespace = ""\n' \
      "${PYTHON}" "${ROOT}/tests/fixtures/conformance_server.py" >"${STATE}/config.toml"
    SERVE=("${PYTHON}" -c "from vsm_mcp.cli.app import main; main()" --state-dir "${STATE}" serve)
    "${SERVE[@]}" --http 127.0.0.1:0 >"${STATE}/gateway.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "${SERVER_PID}" 2>/dev/null || true; wait "${SERVER_PID}" 2>/dev/null; rm -rf "${STATE}"' EXIT
    # The gateway prints "vsm-mcp: MCP on URL" on stderr once it listens.
    URL="$(wait_for_line "${STATE}/gateway.log" 'MCP on http' "${SERVER_PID}")"
    echo "gateway: ${URL} (${SERVE[*]})" >&2
    # The gateway made its admin token at start; the proxy adds it to every request of the suite.
    "${PYTHON}" "${ROOT}/tests/conformance/bearer_proxy.py" --upstream "${URL}" \
      --token-file "${STATE}/admin.token" >"${STATE}/proxy.log" 2>&1 &
    PROXY_PID=$!
    trap 'kill "${PROXY_PID}" "${SERVER_PID}" 2>/dev/null || true; wait "${SERVER_PID}" 2>/dev/null; rm -rf "${STATE}"' EXIT
    PROXIED="$(wait_for_line "${STATE}/proxy.log" '^listening ' "${PROXY_PID}")"
    echo "suite -> ${PROXIED} (adds the admin token) -> ${URL}" >&2
    "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${PROXIED}" "$@"
    exit $?
    ;;
esac

URL="$1"
shift
if [ -n "${VSM_MCP_TOKEN:-}" ]; then
  LOG="$(mktemp)"
  "${PYTHON}" "${ROOT}/tests/conformance/bearer_proxy.py" --upstream "${URL}" >"${LOG}" 2>&1 &
  PROXY_PID=$!
  trap 'kill "${PROXY_PID}" 2>/dev/null || true; rm -f "${LOG}"' EXIT
  PROXIED="$(wait_for_line "${LOG}" '^listening ' "${PROXY_PID}")"
  echo "suite -> ${PROXIED} (adds \$VSM_MCP_TOKEN) -> ${URL}" >&2
  "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${PROXIED}" "$@"
  exit $?
fi
exec "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
