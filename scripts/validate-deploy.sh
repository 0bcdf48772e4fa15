#!/usr/bin/env bash
# Checks the deployment files without a cluster: the Kubernetes manifests strictly against the Kubernetes
# schemas (scripts/validate-deploy.mjs, needs `pnpm install`), and docker-compose.yml with `docker compose
# config` where a Docker client is installed. Usage: scripts/validate-deploy.sh [manifest dir]
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/validate-deploy.mjs "$@"
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  docker compose config --quiet && echo "docker compose config: valid"
else
  echo "docker compose config: not run (no docker client with the compose plugin on this machine)"
fi
