#!/usr/bin/env bash
# Starts the embedded platform exactly as `pnpm start` does (built code, embedded PostgreSQL in a fresh
# folder, SQL transport), waits until the gateway and every service answer /health/ready with 200, stops it.
# Ports are chosen free; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-tools.sh
[ -f services/embedded/dist/main.js ] || pnpm build
dir="$(mktemp -d)"; chmod 755 "$dir"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
gw=$(free_port); pgp=$(free_port); cp_=$(free_port); cs=$(free_port); au=$(free_port)
log="$dir/platform.log"
env -u DATABASE_URL -u KAFKA_BROKERS -u EVENT_TRANSPORT CMC_DATA_DIR="$dir/data" GATEWAY_PORT="$gw" EMBEDDED_PG_PORT="$pgp" \
  CONSENT_PORT="$cs" CAREPLAN_PORT="$cp_" AUDIT_PORT="$au" LOG_LEVEL=info \
  CMC_BOOTSTRAP_ADMIN_EMAIL=admin@example.org CMC_BOOTSTRAP_ADMIN_PASSWORD='Choose-A-Passw0rd' node --disable-warning=TimeoutNegativeWarning --max-semi-space-size=16 services/embedded/dist/main.js >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ok=""
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$gw/health/ready" >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ok" ]; then echo "smoke: the platform did not become ready"; cat "$log"; exit 1; fi
for url in "http://127.0.0.1:$gw" "http://127.0.0.1:$cs" "http://127.0.0.1:$cp_" "http://127.0.0.1:$au"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")
  echo "smoke: $url/health/ready -> $code"
  [ "$code" = 200 ] || { cat "$log"; exit 1; }
done
grep -F "ready: one base URL" "$log"
scripts/first-calls.sh "http://127.0.0.1:$gw" || { tail -50 "$log"; exit 1; }
# Every request was logged at info level; none of the patient's data may be in the log.
for secret in 9434765919 'Margaret' '1938-04-12' 'nurse@sunrise.example' 'Choose-A-Passw0rd' 'Temporary-Passw0rd'; do
  if grep -qF "$secret" "$log"; then echo "smoke: the log holds patient data or a secret ($secret):"; grep -F "$secret" "$log" | head -5; exit 1; fi
done
echo "smoke: $(wc -l <"$log") log lines, no patient data or password in them"
# Shut down gracefully and check that it exits by itself.
kill -TERM "$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
if kill -0 "$pid" 2>/dev/null; then echo "smoke: did not stop within 10 s of SIGTERM"; exit 1; fi
echo "smoke: stopped cleanly"
