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
#
# Installs Node 22 and the pinned suite into .tools/ on first use
# (scripts/install-node22.sh). Exit status: 0 when no scenario FAILS, 1 otherwise,
# 2 when the suite cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${ROOT}/.venv/bin/python"
[ -x "${PYTHON}" ] || PYTHON="$(command -v python3)"

if [ "$#" -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
    "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
    exit $?
    ;;
esac

URL="$1"
shift
exec "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
