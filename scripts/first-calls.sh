#!/usr/bin/env bash
# The README's first calls, run as written: the bootstrap admin registers a care home and a nurse; the nurse
# logs in, records consent, writes a plan and publishes it; the plan is read back. Used by the smoke test, so
# the README cannot drift from what the platform does. Needs a platform started with
# CMC_BOOTSTRAP_ADMIN_EMAIL=admin@example.org CMC_BOOTSTRAP_ADMIN_PASSWORD='Choose-A-Passw0rd'.
#   scripts/first-calls.sh [base URL, default http://127.0.0.1:8080]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-http://127.0.0.1:8080}
json() { node -pe "const v=JSON.parse(require('fs').readFileSync(0)); $1"; }
# post URL TOKEN BODY [extra curl args]: fails loudly on a status other than 2xx
post() {
  local url=$1 token=$2 body=$3; shift 3
  local type=application/json; [[ $url == /fhir/* ]] && type=application/fhir+json
  local data=(-X POST); [ -n "$body" ] && data=(-H "content-type: $type" --data-binary "$body")
  local out; out=$(curl -sS -w '\n%{http_code}' "$B$url" ${token:+-H "authorization: Bearer $token"} "${data[@]}" "$@")
  local code=${out##*$'\n'}
  if [[ $code != 2* ]]; then echo "first-calls: POST $url -> $code: ${out%$'\n'*}" >&2; exit 1; fi
  printf '%s' "${out%$'\n'*}"
}
# get URL TOKEN: fails loudly on a status other than 2xx
get() {
  local out; out=$(curl -sS -w '\n%{http_code}' "$B$1" -H "authorization: Bearer $2")
  local code=${out##*$'\n'}
  if [[ $code != 2* ]]; then echo "first-calls: GET $1 -> $code" >&2; exit 1; fi
  printf '%s' "${out%$'\n'*}"
}

# 1. The service-team admin logs in and accepts the acceptable use policy.
T=$(post /auth/login '' '{"email":"admin@example.org","password":"Choose-A-Passw0rd"}' | json v.access_token)
T=$(post /auth/accept-aup "$T" '{"version":"2026-11"}' | json v.access_token)
# 2. A care home (its sharing agreement and toolkit status let its staff in) and a nurse.
post /api/organisations "$T" '{"odsCode":"H81001","name":"Sunrise Care Home","type":"care-home","isaSignedOn":"2026-11-01","dsptStatus":"standards-met","dsptAssessedOn":"2026-10-01"}' >/dev/null
post /api/users "$T" '{"email":"nurse@sunrise.example","name":"A Nurse","organisation":"H81001","role":"clinician","registration":{"body":"NMC","number":"12A3456B"},"trainedOn":"2026-11-02","temporaryPassword":"Temporary-Passw0rd"}' >/dev/null
# 3. The nurse logs in, replaces the temporary password and accepts the policy.
N=$(post /auth/login '' '{"email":"nurse@sunrise.example","password":"Temporary-Passw0rd"}' | json v.access_token)
N=$(post /auth/change-password "$N" '{"currentPassword":"Temporary-Passw0rd","newPassword":"Nurse-Chosen-Passw0rd"}' | json v.access_token)
N=$(post /auth/accept-aup "$N" '{"version":"2026-11"}' | json v.access_token)
# 4. Consent, then the plan (a draft), then publishing it (If-Match: the version the nurse saw).
post /fhir/R4/Consent "$N" "$(cat docs/examples/consent.json)" >/dev/null
# The consent reaches the care-plan service as an event, within moments: a create just before it arrives is a 422
# that says so, and a client tries again shortly (here for up to 10 seconds).
for _ in $(seq 1 40); do
  out=$(curl -sS -w '\n%{http_code}' "$B/fhir/R4/CarePlan" -H "authorization: Bearer $N" -H 'content-type: application/fhir+json' --data-binary @docs/examples/care-plan.json)
  code=${out##*$'\n'}
  [ "$code" = 422 ] && grep -q 'no active consent' <<<"$out" || break
  sleep 0.25
done
[ "$code" = 201 ] || { echo "first-calls: POST /fhir/R4/CarePlan -> $code: ${out%$'\n'*}" >&2; exit 1; }
PLAN=$(printf '%s' "${out%$'\n'*}" | json v.id)
post "/fhir/R4/CarePlan/$PLAN/\$publish" "$N" '' -H 'if-match: W/"1"' | json '`published: ${v.status}, review by ${v.period.end}`'
# 5. Anyone allowed finds it by NHS number.
curl -sS -G "$B/fhir/R4/CarePlan" --data-urlencode 'patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919' \
  -H "authorization: Bearer $N" | json '`search: ${v.total ?? v.entry?.length} plan(s), status ${v.entry?.[0]?.resource?.status}`'
# 6. The dispatch lookup (what ambulance software asks), the urgent care summary, and the printable plan.
get /api/flags/9434765919 "$N" | json '`flag: hasPlan ${v.hasPlan}, ${v.resuscitation}, alerts ${v.alerts}`'
get "/api/care-plans/$PLAN/summary" "$N" | json '`summary: resuscitation ${v.resuscitation.decision}, ${v.alerts.length} alert(s), ${v.contacts.length} contact(s)`'
curl -fsS -o /dev/null -w 'print: %{http_code} %{content_type}, %{size_download} bytes\n' "$B/api/care-plans/$PLAN/print" -H "authorization: Bearer $N"
