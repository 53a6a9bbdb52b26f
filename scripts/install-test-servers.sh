#!/usr/bin/env bash
# Install the third-party MCP servers the gateway's end-to-end tests and the
# gateway benchmark run, each in its own prefix (never global), pinned:
#   - @modelcontextprotocol/server-everything (npm)  -> $CACHE/npm
#   - mcp-server-time (PyPI)                         -> $CACHE/time-venv
#   - fastmcp 4 (PyPI, only for `vsm-mcp bench gateway`) -> $CACHE/fastmcp-venv
# Idempotent: a pinned version already installed is left alone.
#
# Usage: scripts/install-test-servers.sh [--no-fastmcp]
# CACHE defaults to $VSM_MCP_TEST_SERVERS or <repo>/.tools/test-servers (what the tests look for).
# Needs: node + npm (18+), python3.11 with the project .venv (for uv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VSM_MCP_TEST_SERVERS:-${ROOT}/.tools/test-servers}"
EVERYTHING_VERSION="2026.8.31"
TIME_VERSION="2026.10.19"
FASTMCP_VERSION="4.2.3"
UV="${ROOT}/.venv/bin/uv"
[ -x "${UV}" ] || UV="$(command -v uv)"
WITH_FASTMCP=1
[ "${1:-}" = "--no-fastmcp" ] && WITH_FASTMCP=0

mkdir -p "${CACHE}"

installed_npm="$(node -e "try{console.log(require('${CACHE}/npm/node_modules/@modelcontextprotocol/server-everything/package.json').version)}catch(e){}" 2>/dev/null || true)"
if [ "${installed_npm}" != "${EVERYTHING_VERSION}" ]; then
  echo "installing @modelcontextprotocol/server-everything@${EVERYTHING_VERSION} into ${CACHE}/npm"
  npm install --silent --no-audit --no-fund --prefix "${CACHE}/npm" \
    "@modelcontextprotocol/server-everything@${EVERYTHING_VERSION}"
fi

venv_with() {  # venv_with DIR PACKAGE VERSION
  local dir="$1" package="$2" version="$3"
  if [ -x "${dir}/bin/python" ] && "${dir}/bin/python" -c \
      "import importlib.metadata as m, sys; sys.exit(m.version('${package}') != '${version}')" 2>/dev/null; then
    return 0
  fi
  echo "installing ${package}==${version} into ${dir}"
  "${UV}" venv --quiet --python 3.11 "${dir}"
  "${UV}" pip install --quiet --python "${dir}/bin/python" "${package}==${version}"
}

venv_with "${CACHE}/time-venv" mcp-server-time "${TIME_VERSION}"
if [ "${WITH_FASTMCP}" = 1 ]; then
  venv_with "${CACHE}/fastmcp-venv" fastmcp "${FASTMCP_VERSION}"
fi
echo "test servers ready in ${CACHE}"
