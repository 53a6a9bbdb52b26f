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
#
# Installs Node 22 and the pinned suite into .tools/ on first use
# (scripts/install-node22.sh). Exit status: 0 when no scenario FAILS, 1 otherwise,
# 2 when the suite cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${ROOT}/.venv/bin/python"
[ -x "${PYTHON}" ] || PYTHON="$(command -v python3)"

if [ "$#" -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

if [ "$1" = "--fixture" ]; then
  shift
  LOG="$(mktemp)"
  # The fixture binds a free port itself and prints "listening URL" once it accepts connections.
  "${PYTHON}" "${ROOT}/tests/fixtures/conformance_server.py" --http 127.0.0.1:0 >"${LOG}" 2>&1 &
  FIXTURE_PID=$!
  trap 'kill "${FIXTURE_PID}" 2>/dev/null || true; rm -f "${LOG}"' EXIT
  for _ in $(seq 1 300); do
    grep -q '^listening ' "${LOG}" && break
    kill -0 "${FIXTURE_PID}" 2>/dev/null || { cat "${LOG}" >&2; exit 1; }
    sleep 0.1
  done
  URL="$(sed -n 's/^listening //p' "${LOG}")"
  [ -n "${URL}" ] || { echo "conformance: fixture server did not start" >&2; cat "${LOG}" >&2; exit 1; }
  echo "fixture server: ${URL}" >&2
  "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
  exit $?
fi

URL="$1"
shift
exec "${PYTHON}" "${ROOT}/tests/conformance/suite.py" --url "${URL}" "$@"
