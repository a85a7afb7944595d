#!/usr/bin/env bash
# side-by-side.sh - our forwardauth-svc next to the seed (PyPI mcp-oauth-dynamicclient 0.2.0) in ONE run,
# same machine, same wrk settings, interleaved rounds (every scenario once per round; medians over rounds).
#
# Phase "side" (the side-by-side table):
#   seed (uvicorn, RS256, LOG_LEVEL=INFO, Redis):  metadata, /verify valid, /verify garbage, POST /register,
#                                                  POST /token refresh_token (one fixed token: never rotated)
#   ours (release binary, embedded redb store, default log level, ES256):
#                                                  /health (no-op ceiling), metadata, /verify valid, /verify
#                                                  garbage, POST /register, POST /token refresh_token (a pool of
#                                                  real refresh tokens from the real flow; each used once)
#   nginx (1 worker) in front of a trivial upstream (a static `return 200` server block of the same nginx):
#                                                  no auth; auth_request -> our /verify (the config printed by
#                                                  `forwardauth-svc snippet --proxy nginx`); auth_request -> the
#                                                  seed's /verify
#   Per scenario: req/s, p50, p99, server CPU ms/request (utime+stime deltas of every server-side process:
#   for the seed with and without its Redis), RSS. Startup to first 200 and idle RSS for both.
# Phase "growth": store size and RSS growth per refresh rotation (every rotation keeps a marker record).
# Phase "scale":
#   /verify with 1, 10k, 100k distinct valid tokens (store, key and tokens from `bench-verify --prepare`);
#   /register throughput, store file size, start time and RSS at ~1k, ~10k, ~100k registered clients.
#
# Tokens: ours through the real flow (register -> authorize -> login -> consent -> token, then more grants
# with the session and remembered consent) driven by sbs/flow.py; the seed's through its own
# AuthManager.create_jwt_token / create_refresh_token (seed/mint_token.py and an inline call).
#
# Knobs (env): OURS_BIN BENCH_VERIFY (default: ../../main/target/release/{forwardauth-svc,bench-verify}
#   relative to this script) VENV THREADS=2 CONNS=32 DURATION=8s WARMUP=2s ROUNDS=3 PHASES="side scale"
#   PHASES: side, scale (= scale_verify scale_clients), growth (store/RSS growth per refresh rotation;
#   GROWTH_RUNS=2 GROWTH_DURATION=15s)  APPEND=1 (add to RUN_DIR's earlier results)
#   GRANTS=400 (refresh-token pool) STARTUP_RUNS=3 SCALE_DURATION=6s SCALE_ROUNDS=2
#   SCALE_TOKENS="1 10000 100000" SCALE_CLIENTS="1000 10000 100000" PIN=0 (1: server-side processes on
#   CPU 1, wrk on CPU 0) RUN_DIR=<dir>  ports: REDIS_PORT=6391 SEED_PORT=8911 OURS_PORT=8912
#   NGX_PLAIN_PORT=8913 NGX_OURS_PORT=8914 NGX_SEED_PORT=8915 UP_PORT=8916 SCALE_PORT=8917
# Everything listens on 127.0.0.1; only the PIDs started here are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=seed/benchlib.sh
source "$HERE/seed/benchlib.sh"
SBS_LUA="$HERE/sbs/sbs.lua"

OURS_BIN=${OURS_BIN:-$PWD/target/release/forwardauth-svc}
BENCH_VERIFY=${BENCH_VERIFY:-$(dirname "$OURS_BIN")/bench-verify}
VENV=${VENV:-${TMPDIR:-/tmp}/predecessor-venv}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
PHASES=${PHASES:-side scale growth}
GRANTS=${GRANTS:-400}
STARTUP_RUNS=${STARTUP_RUNS:-3}
SCALE_DURATION=${SCALE_DURATION:-6s}
SCALE_ROUNDS=${SCALE_ROUNDS:-2}
SCALE_TOKENS=${SCALE_TOKENS:-1 10000 100000}
SCALE_CLIENTS=${SCALE_CLIENTS:-1000 10000 100000}
PIN=${PIN:-0}
REDIS_PORT=${REDIS_PORT:-6391}
SEED_PORT=${SEED_PORT:-8911}
OURS_PORT=${OURS_PORT:-8912}
NGX_PLAIN_PORT=${NGX_PLAIN_PORT:-8913}
NGX_OURS_PORT=${NGX_OURS_PORT:-8914}
NGX_SEED_PORT=${NGX_SEED_PORT:-8915}
NGX_PLAIN_KA_PORT=${NGX_PLAIN_KA_PORT:-8918}
NGX_OURS_KA_PORT=${NGX_OURS_KA_PORT:-8919}
UP_PORT=${UP_PORT:-8916}
SCALE_PORT=${SCALE_PORT:-8917}
RUN_DIR=${RUN_DIR:-$(mktemp -d -t side-by-side.XXXXXX)}
RUN_DIR=$(cd "$RUN_DIR" && pwd)
RESULTS_TSV="$RUN_DIR/results.tsv"
LOADS="$RUN_DIR/loadavg.txt"
# APPEND=1 adds to an earlier run's directory (e.g. PHASES=scale_clients after a failure) instead of starting over
if [ "${APPEND:-0}" != 1 ]; then : >"$RESULTS_TSV"; : >"$LOADS"; fi
export SBS_NTHREADS=$THREADS

die() { echo "side-by-side: $*" >&2; exit 1; }
log() { echo "== $(date +%T) $*" >&2; }
loadmark() { echo "$1 $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"; log "loadavg $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }

for t in wrk curl redis-server redis-cli nginx python3; do command -v "$t" >/dev/null || die "missing $t"; done
[ -x "$OURS_BIN" ] || die "no binary at $OURS_BIN (set OURS_BIN)"
[ -x "$VENV/bin/mcp-oauth-server" ] || die "no seed venv at $VENV: run seed-baseline.sh once (it creates it)"
PY="$VENV/bin/python"
for p in "$REDIS_PORT" "$SEED_PORT" "$OURS_PORT" "$NGX_PLAIN_PORT" "$NGX_OURS_PORT" "$NGX_SEED_PORT" "$UP_PORT" "$SCALE_PORT" "$NGX_PLAIN_KA_PORT" "$NGX_OURS_KA_PORT"; do
  port_in_use "$p" && die "port $p is already in use"
done
if [ "$PIN" = 1 ]; then SRV=(taskset -c 1); WRK=(taskset -c 0); else SRV=(); WRK=(); fi

# ---------------------------------------------------------------- processes we own
REDIS_PID= SEED_PID= OURS_PID= NGX_PID= SCALE_PID=
cleanup() {
  local rc=$?
  for v in SCALE_PID NGX_PID OURS_PID SEED_PID REDIS_PID; do stop_pid "${!v}"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait200 URL PID: like benchlib's wait_200 but polls every 5 ms (our service starts in ~10 ms)
wait200() {
  local url=$1 pid=$2 deadline=$(( $(date +%s) + 60 ))
  while :; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited" >&2; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout on $url" >&2; return 1; }
    sleep 0.005
  done
}
# ticks PID...: summed utime+stime of the processes (and all their threads)
ticks() { local s=0 p; for p in "$@"; do s=$(( s + $(cpu_ticks "$p") )); done; echo "$s"; }
ngx_pids() { echo "$NGX_PID" $(pgrep -P "$NGX_PID" || true); }

# scenario ROUND NAME EXPECT URL "MAIN_PIDS" "ALL_PIDS" MODE [ARGS...]: warm-up, then the measured run.
# TSV row: round name expect rps p50 p99 max requests status_err sock_err cpu_main_ms cpu_all_ms rss_mib check
scenario() {
  local round=$1 name=$2 expect=$3 url=$4 main=$5 all=$6
  shift 6
  local raw="$RUN_DIR/wrk/$name.r$round.txt"
  mkdir -p "$RUN_DIR/wrk"
  if [ "$1" = refresh ]; then
    "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$SBS_LUA" "$url" -- refresh "$2" "$2.next" "$4" >/dev/null 2>&1 || true
    mv "$2.next" "$2"
  else
    "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$SBS_LUA" "$url" -- "$@" >/dev/null 2>&1 || true
  fi
  # shellcheck disable=SC2086
  local m0 a0 m1 a1 rss
  m0=$(ticks $main); a0=$(ticks $all)
  if [ "$1" = refresh ]; then
    "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s --latency -s "$SBS_LUA" "$url" -- refresh "$2" "$2.next" "$4" >"$raw" 2>&1
    mv "$2.next" "$2"
  else
    "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s --latency -s "$SBS_LUA" "$url" -- "$@" >"$raw" 2>&1
  fi
  # shellcheck disable=SC2086
  m1=$(ticks $main); a1=$(ticks $all)
  rss=0; for p in $main; do rss=$(( rss + $(rss_kb "$p") )); done
  local line; line=$(grep '^RESULT ' "$raw" | tail -1)
  [ -n "$line" ] || die "scenario $name: no RESULT line, see $raw"
  local req serr sockerr check=ok
  req=$(kv "$line" requests); serr=$(kv "$line" status_err)
  sockerr=$(( $(kv "$line" connect_err) + $(kv "$line" read_err) + $(kv "$line" write_err) + $(kv "$line" timeout_err) ))
  if [ "$expect" -ge 400 ]; then [ "$serr" = "$req" ] || check=MISMATCH; else [ "$serr" = 0 ] || check=MISMATCH; fi
  [ "$sockerr" = 0 ] || check="$check,sockerr"
  awk -v r="$round" -v n="$name" -v e="$expect" -v rps="$(kv "$line" rps)" -v p50="$(kv "$line" p50_us)" \
      -v p99="$(kv "$line" p99_us)" -v mx="$(kv "$line" max_us)" -v req="$req" -v se="$serr" -v so="$sockerr" \
      -v dm=$(( m1 - m0 )) -v da=$(( a1 - a0 )) -v hz="$CLK_TCK" -v rss="$rss" -v ck="$check" 'BEGIN {
        printf "%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.1f\t%d\t%d\t%d\t%.4f\t%.4f\t%.1f\t%s\n", r, n, e, rps, p50 / 1000,
          p99 / 1000, mx / 1000, req, se, so, (req > 0 ? dm * 1000 / hz / req : 0),
          (req > 0 ? da * 1000 / hz / req : 0), rss / 1024, ck }' >>"$RESULTS_TSV"
  printf '   %-22s r%s %s\n' "$name" "$round" "$(tail -1 "$RESULTS_TSV" | cut -f4-14 | tr '\t' ' ')" >&2
}

# ---------------------------------------------------------------- ours: config, users
hash_pw() { printf '%s' "$1" | "$OURS_BIN" hash-password 2>/dev/null | tail -1; }
# write_ours_config DIR PORT RESOURCE_URL [USERS_FILE]
write_ours_config() {
  mkdir -p "$1"
  {
    echo "listen = \"127.0.0.1:$2\""
    echo "issuer = \"http://127.0.0.1:$2\""
    echo "[store]"; echo 'backend = "embedded"'; echo 'path = "oauth.redb"'
    # The per-address limits (on by default) would measure 429s: every wrk connection comes from 127.0.0.1.
    echo "[rate_limits]"; echo 'authorize = 0'; echo 'login = 0'; echo 'callback = 0'; echo 'token = 0'; echo 'register = 0'
    echo "[registration]"; echo 'max_clients = 0'
    echo "[login]"; echo 'regulation = false'
    echo "[[resources]]"; echo "resource = \"$3\""; echo 'scopes = ["mcp"]'; echo 'required_scopes = ["mcp"]'
    if [ -n "${4:-}" ]; then echo "[users]"; echo "file = \"$4\""; fi
  } >"$1/config.toml"
}
# start_ours CONFIG_DIR PORT LOG -> OURS_STARTUP_MS, sets the PID in the variable named by $4
start_svc() {
  local dir=$1 port=$2 logf=$3 var=$4 t0 pid
  t0=$(now_ns)
  (cd "$dir" && exec "${SRV[@]}" "$OURS_BIN" --config "$dir/config.toml" serve) >>"$logf" 2>&1 &
  pid=$!
  printf -v "$var" '%s' "$pid"
  wait200 "http://127.0.0.1:$port/.well-known/oauth-authorization-server" "$pid" || die "our service did not come up, see $logf"
  SVC_STARTUP_MS=$(( ($(now_ns) - t0) / 1000000 ))
}

median_of() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ================================================================ phase: side
phase_side() {
  # ---------------- seed (as seed-baseline.sh does it)
  REDIS_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  export GITHUB_CLIENT_ID=dummy-github-client-id GITHUB_CLIENT_SECRET=dummy-github-client-secret
  JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_'); export JWT_SECRET
  export JWT_ALGORITHM=RS256 BASE_DOMAIN=bench.localhost REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" REDIS_PASSWORD
  export ACCESS_TOKEN_LIFETIME=86400 REFRESH_TOKEN_LIFETIME=2592000 SESSION_TIMEOUT=3600 CLIENT_LIFETIME=7776000
  export ALLOWED_GITHUB_USERS=bench-user MCP_PROTOCOL_VERSION=2025-06-18 LOG_LEVEL=INFO PYTHONDONTWRITEBYTECODE=1
  unset LOG_FILE
  mkdir -p "$RUN_DIR/seed"; cd "$RUN_DIR/seed"
  [ ! -e .env ] || die "$RUN_DIR/seed/.env exists"
  JWT_PRIVATE_KEY_B64=$("$PY" "$HERE/seed/mint_token.py" genkey); export JWT_PRIVATE_KEY_B64
  log "redis-server on 127.0.0.1:$REDIS_PORT"
  "${SRV[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --requirepass "$REDIS_PASSWORD" --save '' \
    --appendonly no --dir "$RUN_DIR/seed" --logfile "$RUN_DIR/seed/redis.log" --daemonize no &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -a "$REDIS_PASSWORD" --no-auth-warning ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  local seed_base="http://127.0.0.1:$SEED_PORT" ours_base="http://127.0.0.1:$OURS_PORT"
  local seed_starts=() ours_starts=() t0 i
  for i in $(seq 1 "$STARTUP_RUNS"); do
    t0=$(now_ns)
    "${SRV[@]}" "$VENV/bin/mcp-oauth-server" --host 127.0.0.1 --port "$SEED_PORT" >>"$RUN_DIR/seed/server.log" 2>&1 &
    SEED_PID=$!
    wait200 "$seed_base/.well-known/oauth-authorization-server" "$SEED_PID" || die "seed did not come up"
    seed_starts+=($(( ($(now_ns) - t0) / 1000000 )))
    SEED_RSS_START=$(rss_kb "$SEED_PID")
    [ "$i" -lt "$STARTUP_RUNS" ] && { stop_pid "$SEED_PID"; SEED_PID=; }
  done
  log "seed up (pid $SEED_PID), startups ms: ${seed_starts[*]}"

  # ---------------- ours
  local od="$RUN_DIR/ours"
  mkdir -p "$od"
  local pw; pw=$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')
  printf '[[users]]\nusername = "bench"\npassword_hash = "%s"\nemail = "bench@example.com"\n' "$(hash_pw "$pw")" >"$od/users.toml"
  local resource="http://127.0.0.1:$NGX_OURS_PORT/mcp"
  write_ours_config "$od" "$OURS_PORT" "$resource" users.toml
  for i in $(seq 1 "$STARTUP_RUNS"); do
    start_svc "$od" "$OURS_PORT" "$od/server.log" OURS_PID
    ours_starts+=("$SVC_STARTUP_MS")
    OURS_RSS_START=$(rss_kb "$OURS_PID")
    [ "$i" -lt "$STARTUP_RUNS" ] && { stop_pid "$OURS_PID"; OURS_PID=; }
  done
  log "ours up (pid $OURS_PID), startups ms (first = fresh store, key generation): ${ours_starts[*]}"

  # ---------------- tokens
  log "seed: register + mint (its own create_jwt_token / create_refresh_token)"
  local reg seed_cid
  reg=$(curl -s --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d '{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"bench"}' "$seed_base/register")
  seed_cid=$(jq -r .client_id <<<"$reg")
  "$PY" "$HERE/seed/mint_token.py" mint --client-id "$seed_cid" >"$RUN_DIR/seed/tokens.json" 2>"$RUN_DIR/seed/mint.log"
  local seed_valid; seed_valid=$(jq -r .valid "$RUN_DIR/seed/tokens.json")
  local seed_refresh
  seed_refresh=$("$PY" - "$seed_cid" 2>>"$RUN_DIR/seed/mint.log" <<'PYEOF'
import asyncio, sys
import redis.asyncio as redis
from mcp_oauth_dynamicclient.auth_authlib import AuthManager
from mcp_oauth_dynamicclient.config import Settings
async def main():
    s = Settings()
    r = redis.from_url(s.redis_url, decode_responses=True, password=s.redis_password or None)
    tok = await AuthManager(s).create_refresh_token(
        {"user_id": "12345", "username": "bench-user", "client_id": sys.argv[1], "scope": "openid profile email"}, r)
    await r.aclose()
    print(tok)
asyncio.run(main())
PYEOF
)
  log "ours: $GRANTS grants through the real flow (sbs/flow.py)"
  "$PY" "$HERE/sbs/flow.py" --base "$ours_base" --resource "$resource" --user bench --password "$pw" \
    --grants "$GRANTS" >"$od/flow.json"
  local ours_valid ours_cid
  ours_valid=$(jq -r .access_token "$od/flow.json"); ours_cid=$(jq -r .client_id "$od/flow.json")
  jq -r '.refresh_tokens[]' "$od/flow.json" >"$od/pool.txt"
  log "flow timings: $(jq -c .timings_ms "$od/flow.json")"

  # ---------------- nginx: trivial upstream, no auth, auth_request -> ours, auth_request -> seed
  local nd="$RUN_DIR/nginx"; mkdir -p "$nd/tmp"
  "$OURS_BIN" snippet --proxy nginx --mcp-url "$resource" --auth-url "$ours_base" \
    --upstream "http://127.0.0.1:$UP_PORT" --bind 127.0.0.1 >"$nd/ours-snippet.conf"
  # the snippet's `location /` without the auth_request lines = the same proxying, no gate
  local plain_loc seed_loc
  plain_loc=$(awk '/^    location \/ \{/,/^    \}/' "$nd/ours-snippet.conf" | grep -vE 'auth_request|error_page 403|\$forwardauth_')
  seed_loc=$(awk '/^    location \/ \{/,/^    \}/' "$nd/ours-snippet.conf" | grep -vE 'auth_request_set|error_page 40[13]|\$forwardauth_' \
    | sed 's#auth_request /_forwardauth/verify;#auth_request /_seed/verify;#')
  # keep-alive variants (not what the snippet prints): the same locations with upstream blocks that keep
  # connections to the gate and to the upstream open; requests carry Host: 127.0.0.1:$NGX_OURS_PORT so the
  # gate sees the same resource URL.
  if grep -q '^upstream ' "$nd/ours-snippet.conf"; then
    # The snippet keeps its connections to the gate open itself (an `upstream` with `keepalive`): the variant
    # only adds keep-alive towards the MCP server, and drops the snippet's `upstream` block (declared once).
    sed -e "s#listen 127.0.0.1:$NGX_OURS_PORT;#listen 127.0.0.1:$NGX_OURS_KA_PORT;#" \
        -e "s#proxy_pass http://127.0.0.1:$UP_PORT;#proxy_pass http://up_ka;#" \
        -e '/^upstream /,/^}/d' "$nd/ours-snippet.conf" >"$nd/ours-snippet-ka.conf"
  else
    sed -e "s#listen 127.0.0.1:$NGX_OURS_PORT;#listen 127.0.0.1:$NGX_OURS_KA_PORT;#" \
        -e "s#proxy_pass $ours_base/verify;#proxy_pass http://fa_ka/verify; proxy_http_version 1.1; proxy_set_header Connection \"\";#" \
        -e "s#proxy_pass http://127.0.0.1:$UP_PORT;#proxy_pass http://up_ka;#" "$nd/ours-snippet.conf" >"$nd/ours-snippet-ka.conf"
    grep -q 'proxy_pass http://fa_ka/verify' "$nd/ours-snippet-ka.conf" || die "keep-alive variant: no verify proxy_pass replaced"
  fi
  local plain_ka_loc; plain_ka_loc=$(sed "s#proxy_pass http://127.0.0.1:$UP_PORT;#proxy_pass http://up_ka;#" <<<"$plain_loc")
  cat >"$nd/nginx.conf" <<NGX
worker_processes 1;
pid $nd/nginx.pid;
error_log $nd/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $nd/tmp/body; proxy_temp_path $nd/tmp/proxy; fastcgi_temp_path $nd/tmp/fcgi;
  uwsgi_temp_path $nd/tmp/uwsgi; scgi_temp_path $nd/tmp/scgi;
  server { listen 127.0.0.1:$UP_PORT; location / { default_type text/plain; return 200 "upstream ok\n"; } }
  server {
    listen 127.0.0.1:$NGX_PLAIN_PORT;
$plain_loc
  }
  server {
    listen 127.0.0.1:$NGX_SEED_PORT;
$seed_loc
    location = /_seed/verify {
        internal;
        proxy_pass $seed_base/verify;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
  }
  include $nd/ours-snippet.conf;
  upstream fa_ka { server 127.0.0.1:$OURS_PORT; keepalive 32; }
  upstream up_ka { server 127.0.0.1:$UP_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$NGX_PLAIN_KA_PORT;
$plain_ka_loc
  }
  include $nd/ours-snippet-ka.conf;
}
NGX
  grep -q "listen .*$NGX_OURS_PORT" "$nd/ours-snippet.conf" || die "snippet does not listen on $NGX_OURS_PORT: see $nd/ours-snippet.conf"
  nginx -t -c "$nd/nginx.conf" -p "$nd" >"$nd/nginx-t.log" 2>&1 || { cat "$nd/nginx-t.log" >&2; die "nginx -t failed"; }
  "${SRV[@]}" nginx -c "$nd/nginx.conf" -p "$nd" -g 'daemon off;' &
  NGX_PID=$!
  wait200 "http://127.0.0.1:$UP_PORT/" "$NGX_PID" || die "nginx did not come up"

  # ---------------- sanity checks (abort on mismatch)
  local fail=0
  expect() { if [ "$2" = "$3" ]; then printf '  ok   %-48s %s\n' "$1" "$3" >&2; else printf '  FAIL %-48s got %s, want %s\n' "$1" "$3" "$2" >&2; fail=1; fi; }
  local fwd=(-H 'X-Forwarded-Method: POST' -H 'X-Forwarded-Proto: http' -H "X-Forwarded-Host: 127.0.0.1:$NGX_OURS_PORT" -H 'X-Forwarded-Uri: /mcp')
  expect "seed metadata" 200 "$(http_code "$seed_base/.well-known/oauth-authorization-server")"
  expect "seed /verify valid" 200 "$(http_code -H "Authorization: Bearer $seed_valid" "$seed_base/verify")"
  expect "seed /verify garbage" 401 "$(http_code -H "Authorization: Bearer not-a-jwt" "$seed_base/verify")"
  expect "seed /register" 201 "$(http_code -X POST -H 'Content-Type: application/json' -d '{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"wrk-bench"}' "$seed_base/register")"
  expect "seed /token refresh" 200 "$(http_code -X POST -d "grant_type=refresh_token&refresh_token=$seed_refresh&client_id=$seed_cid" "$seed_base/token")"
  expect "ours /health" 200 "$(http_code "$ours_base/health")"
  expect "ours metadata" 200 "$(http_code "$ours_base/.well-known/oauth-authorization-server")"
  expect "ours /verify valid (Traefik headers)" 200 "$(http_code "${fwd[@]}" -H "Authorization: Bearer $ours_valid" "$ours_base/verify")"
  expect "ours /verify garbage" 401 "$(http_code "${fwd[@]}" -H "Authorization: Bearer not-a-jwt" "$ours_base/verify")"
  expect "ours /register (the seed's body)" 201 "$(http_code -X POST -H 'Content-Type: application/json' -d '{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"wrk-bench"}' "$ours_base/register")"
  local rt1; rt1=$(head -1 "$od/pool.txt")
  local rr; rr=$(curl -s --max-time 5 -w '\n%{http_code}' -X POST -d "grant_type=refresh_token&refresh_token=$rt1&client_id=$ours_cid" "$ours_base/token")
  expect "ours /token refresh (rotates)" 200 "${rr##*$'\n'}"
  { jq -r .refresh_token <<<"${rr%$'\n'*}"; tail -n +2 "$od/pool.txt"; } >"$od/pool.tmp" && mv "$od/pool.tmp" "$od/pool.txt"
  expect "ours /token refresh, reused old token" 200 "$(http_code -X POST -d "grant_type=refresh_token&refresh_token=$rt1&client_id=$ours_cid" "$ours_base/token")"
  expect "nginx plain -> upstream" 200 "$(http_code "http://127.0.0.1:$NGX_PLAIN_PORT/mcp")"
  expect "nginx + ours, no token" 401 "$(http_code "http://127.0.0.1:$NGX_OURS_PORT/mcp")"
  expect "nginx + ours, valid token" 200 "$(http_code -H "Authorization: Bearer $ours_valid" "http://127.0.0.1:$NGX_OURS_PORT/mcp")"
  expect "nginx + ours, garbage token" 401 "$(http_code -H "Authorization: Bearer not-a-jwt" "http://127.0.0.1:$NGX_OURS_PORT/mcp")"
  expect "nginx keep-alive, no auth" 200 "$(http_code "http://127.0.0.1:$NGX_PLAIN_KA_PORT/mcp")"
  expect "nginx keep-alive + ours, valid token" 200 "$(http_code -H "Host: 127.0.0.1:$NGX_OURS_PORT" -H "Authorization: Bearer $ours_valid" "http://127.0.0.1:$NGX_OURS_KA_PORT/mcp")"
  expect "nginx keep-alive + ours, garbage token" 401 "$(http_code -H "Host: 127.0.0.1:$NGX_OURS_PORT" -H "Authorization: Bearer not-a-jwt" "http://127.0.0.1:$NGX_OURS_KA_PORT/mcp")"
  expect "nginx + seed, valid token" 200 "$(http_code -H "Authorization: Bearer $seed_valid" "http://127.0.0.1:$NGX_SEED_PORT/mcp")"
  expect "nginx + seed, no token" 401 "$(http_code "http://127.0.0.1:$NGX_SEED_PORT/mcp")"
  [ "$fail" = 0 ] || die "sanity checks failed"
  curl -s -i "${fwd[@]}" -H "Authorization: Bearer $ours_valid" "$ours_base/verify" >"$od/verify-valid-response.txt"
  curl -s -i -H "Authorization: Bearer $seed_valid" "$seed_base/verify" >"$RUN_DIR/seed/verify-valid-response.txt"
  sleep 1
  SEED_RSS_IDLE=$(rss_kb "$SEED_PID"); OURS_RSS_IDLE=$(rss_kb "$OURS_PID")
  {
    echo "startup_ms seed $(median_of "${seed_starts[@]}") [${seed_starts[*]}]"
    echo "startup_ms ours $(median_of "${ours_starts[@]:1}") [${ours_starts[*]}] (first start: fresh store, key generated)"
    echo "rss_first200_mib seed $(kb_to_mib "$SEED_RSS_START") ours $(kb_to_mib "$OURS_RSS_START")"
    echo "rss_idle_mib seed $(kb_to_mib "$SEED_RSS_IDLE") ours $(kb_to_mib "$OURS_RSS_IDLE")"
    echo "token_bytes seed ${#seed_valid} ours ${#ours_valid}"
  } >"$RUN_DIR/side-facts.txt"

  # ---------------- load: interleaved rounds
  local ngx; ngx=$(ngx_pids)
  local vo="$ours_base/verify" vs="$seed_base/verify"
  loadmark "side-before"
  local r
  for r in $(seq 1 "$ROUNDS"); do
    log "round $r/$ROUNDS: wrk -t$THREADS -c$CONNS -d$DURATION (+$WARMUP warm-up)"
    scenario "$r" ours_health      200 "$ours_base/health" "$OURS_PID" "$OURS_PID" get
    scenario "$r" seed_metadata    200 "$seed_base/.well-known/oauth-authorization-server" "$SEED_PID" "$SEED_PID $REDIS_PID" get
    scenario "$r" ours_metadata    200 "$ours_base/.well-known/oauth-authorization-server" "$OURS_PID" "$OURS_PID" get
    SBS_FWD_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" seed_verify_valid 200 "$vs" "$SEED_PID" "$SEED_PID $REDIS_PID" bearer "$seed_valid"
    SBS_FWD_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" ours_verify_valid 200 "$vo" "$OURS_PID" "$OURS_PID" bearer "$ours_valid"
    SBS_FWD_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" seed_verify_garbage 401 "$vs" "$SEED_PID" "$SEED_PID $REDIS_PID" bearer not-a-jwt
    SBS_FWD_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" ours_verify_garbage 401 "$vo" "$OURS_PID" "$OURS_PID" bearer not-a-jwt
    scenario "$r" seed_register    201 "$seed_base/register" "$SEED_PID" "$SEED_PID $REDIS_PID" register
    scenario "$r" ours_register    201 "$ours_base/register" "$OURS_PID" "$OURS_PID" register
    scenario "$r" seed_refresh     200 "$seed_base/token" "$SEED_PID" "$SEED_PID $REDIS_PID" seedrefresh "$seed_refresh" "$seed_cid"
    scenario "$r" ours_refresh     200 "$ours_base/token" "$OURS_PID" "$OURS_PID" refresh "$od/pool.txt" - "$ours_cid"
    log "   refresh pool left: $(wc -l <"$od/pool.txt")"
    scenario "$r" nginx_noauth     200 "http://127.0.0.1:$NGX_PLAIN_PORT/mcp" "$ngx" "$ngx" bearer "$ours_valid"
    scenario "$r" nginx_ours_auth  200 "http://127.0.0.1:$NGX_OURS_PORT/mcp" "$ngx" "$ngx $OURS_PID" bearer "$ours_valid"
    SBS_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" nginx_noauth_ka 200 "http://127.0.0.1:$NGX_PLAIN_KA_PORT/mcp" "$ngx" "$ngx" bearer "$ours_valid"
    SBS_HOST="127.0.0.1:$NGX_OURS_PORT" scenario "$r" nginx_ours_auth_ka 200 "http://127.0.0.1:$NGX_OURS_KA_PORT/mcp" "$ngx" "$ngx $OURS_PID" bearer "$ours_valid"
    scenario "$r" nginx_seed_auth  200 "http://127.0.0.1:$NGX_SEED_PORT/mcp" "$ngx" "$ngx $SEED_PID $REDIS_PID" bearer "$seed_valid"
  done
  loadmark "side-after"
  sleep 1
  {
    echo "rss_after_load_mib seed $(kb_to_mib "$(rss_kb "$SEED_PID")") ours $(kb_to_mib "$(rss_kb "$OURS_PID")")"
    echo "rss_peak_mib seed $(kb_to_mib "$(hwm_kb "$SEED_PID")") ours $(kb_to_mib "$(hwm_kb "$OURS_PID")")"
    echo "redis_clients_after $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -a "$REDIS_PASSWORD" --no-auth-warning dbsize)"
    echo "ours_store_bytes_after $(stat -c %s "$od/oauth.redb")"
    echo "log_lines seed $(wc -l <"$RUN_DIR/seed/server.log") ours $(wc -l <"$od/server.log")"
    echo "log_errors seed $(grep -cE ' - ERROR - |Traceback' "$RUN_DIR/seed/server.log" || true) ours $(grep -ciE ' ERROR ' "$od/server.log" || true)"
  } >>"$RUN_DIR/side-facts.txt"
  for f in "$RUN_DIR/seed/server.log" "$od/server.log"; do
    { head -n 40 "$f"; echo "... ($(wc -l <"$f") lines, trimmed) ..."; tail -n 20 "$f"; } >"$f.t" && mv "$f.t" "$f"
  done
  stop_pid "$NGX_PID"; NGX_PID=
  stop_pid "$OURS_PID"; OURS_PID=
  stop_pid "$SEED_PID"; SEED_PID=
  stop_pid "$REDIS_PID"; REDIS_PID=
  rm -f "$od/oauth.redb" "$od/pool.txt"
}

# ================================================================ phase: scale
phase_scale_verify() {
  local sd="$RUN_DIR/scale"
  mkdir -p "$sd"
  [ -x "$BENCH_VERIFY" ] || die "no bench-verify at $BENCH_VERIFY"
  # ---- /verify with 1 / 10k / 100k distinct tokens
  local maxtok; maxtok=$(printf '%s\n' $SCALE_TOKENS | sort -n | tail -1)
  log "bench-verify --prepare: $maxtok tokens"
  local t0; t0=$(now_ns)
  "$BENCH_VERIFY" --prepare "$sd/verify" --tokens "$maxtok" >"$sd/prepare.log" 2>&1 || { cat "$sd/prepare.log" >&2; die "prepare failed"; }
  log "prepared in $(( ($(now_ns) - t0) / 1000000 )) ms"
  local vport; vport=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$sd/verify/config.toml")
  port_in_use "$vport" && die "port $vport (from bench-verify --prepare) is in use"
  start_svc "$sd/verify" "$vport" "$sd/verify/server.log" SCALE_PID
  echo "verify_store startup_ms $SVC_STARTUP_MS rss_idle_mib $(kb_to_mib "$(rss_kb "$SCALE_PID")")" >>"$RUN_DIR/scale-facts.txt"
  loadmark "scale-verify-before"
  local r n
  for r in $(seq 1 "$SCALE_ROUNDS"); do
    DURATION=$SCALE_DURATION scenario "$r" "scale_health" 200 "http://127.0.0.1:$vport/health" "$SCALE_PID" "$SCALE_PID" get
    for n in $SCALE_TOKENS; do
      SBS_FWD_HOST="127.0.0.1:$vport" DURATION=$SCALE_DURATION scenario "$r" "scale_verify_$n" 200 \
        "http://127.0.0.1:$vport/verify" "$SCALE_PID" "$SCALE_PID" tokens "$sd/verify/tokens.txt" "$n"
    done
  done
  loadmark "scale-verify-after"
  echo "verify_store rss_after_mib $(kb_to_mib "$(rss_kb "$SCALE_PID")") peak_mib $(kb_to_mib "$(hwm_kb "$SCALE_PID")")" >>"$RUN_DIR/scale-facts.txt"
  stop_pid "$SCALE_PID"; SCALE_PID=
  rm -f "$sd/verify/oauth.redb" "$sd/verify/tokens.txt"
}

phase_scale_clients() {
  # ---- registered clients: ~1k, ~10k, ~100k
  local sd="$RUN_DIR/scale" t0
  mkdir -p "$sd"
  local cd="$sd/clients" have=0 target count
  rm -f "$cd/oauth.redb"
  write_ours_config "$cd" "$SCALE_PORT" "http://127.0.0.1:$SCALE_PORT/mcp"
  start_svc "$cd" "$SCALE_PORT" "$cd/server.log" SCALE_PID
  loadmark "scale-clients-before"
  for target in $SCALE_CLIENTS; do
    local need=$(( target - have ))
    if [ "$need" -gt 0 ]; then
      log "filling to $target clients (+$need)"
      t0=$(now_ns)
      SBS_STOP_AFTER=$(( (need + THREADS - 1) / THREADS )) "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d600s --timeout 5s \
        -s "$SBS_LUA" "http://127.0.0.1:$SCALE_PORT/register" -- register >"$cd/fill-$target.txt" 2>&1 &
      local wpid=$!
      # wrk sleeps its whole -d even when every thread stopped: end it (SIGINT, its own stop) once it is idle
      local last=-1 cur
      while kill -0 "$wpid" 2>/dev/null; do
        sleep 1
        cur=$(cpu_ticks "$SCALE_PID")
        if [ "$cur" = "$last" ]; then kill -INT "$wpid" 2>/dev/null || true; fi
        last=$cur
      done
      wait "$wpid" || true
      log "   fill took $(( ($(now_ns) - t0) / 1000000 )) ms: $(grep '^RESULT' "$cd/fill-$target.txt" | cut -c1-60)"
    fi
    stop_pid "$SCALE_PID"; SCALE_PID=
    count=$("$OURS_BIN" --config "$cd/config.toml" clients list 2>/dev/null | tail -n +2 | grep -c . || true)
    have=$count
    local size; size=$(stat -c %s "$cd/oauth.redb")
    local starts=()
    for _ in 1 2 3; do
      start_svc "$cd" "$SCALE_PORT" "$cd/server.log" SCALE_PID
      starts+=("$SVC_STARTUP_MS")
      stop_pid "$SCALE_PID"; SCALE_PID=
    done
    start_svc "$cd" "$SCALE_PORT" "$cd/server.log" SCALE_PID
    sleep 1
    local rss; rss=$(rss_kb "$SCALE_PID")
    DURATION=$SCALE_DURATION scenario 1 "scale_register_at_$target" 201 "http://127.0.0.1:$SCALE_PORT/register" "$SCALE_PID" "$SCALE_PID" register
    local added; added=$(tail -1 "$RESULTS_TSV" | cut -f8)
    echo "clients target $target listed $count store_bytes $size startup_ms $(median_of "${starts[@]}") [${starts[*]}] rss_idle_mib $(kb_to_mib "$rss") rss_after_mib $(kb_to_mib "$(rss_kb "$SCALE_PID")") register_run_added ~$added" >>"$RUN_DIR/scale-facts.txt"
    tail -1 "$RUN_DIR/scale-facts.txt" >&2
    have=$(( have + added ))
  done
  loadmark "scale-clients-after"
  stop_pid "$SCALE_PID"; SCALE_PID=
  rm -f "$cd/oauth.redb"
}

# ================================================================ phase: growth
# Store and RSS growth from refresh rotations: GRANTS grants through the real flow, then GROWTH_RUNS runs of
# GROWTH_DURATION of refresh_token grants (each token used once); store size and RSS after each run, idle RSS
# after a restart.
phase_growth() {
  local gd="$RUN_DIR/growth" pw r s0 s1 n
  mkdir -p "$gd"
  pw=$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')
  printf '[[users]]\nusername = "bench"\npassword_hash = "%s"\n' "$(hash_pw "$pw")" >"$gd/users.toml"
  write_ours_config "$gd" "$SCALE_PORT" "http://127.0.0.1:$SCALE_PORT/mcp" users.toml
  start_svc "$gd" "$SCALE_PORT" "$gd/server.log" SCALE_PID
  "$PY" "$HERE/sbs/flow.py" --base "http://127.0.0.1:$SCALE_PORT" --resource "http://127.0.0.1:$SCALE_PORT/mcp" \
    --user bench --password "$pw" --grants "$GRANTS" >"$gd/flow.json"
  jq -r '.refresh_tokens[]' "$gd/flow.json" >"$gd/pool.txt"
  local cid; cid=$(jq -r .client_id "$gd/flow.json")
  stop_pid "$SCALE_PID"; SCALE_PID=
  s0=$(stat -c %s "$gd/oauth.redb")
  echo "growth after $GRANTS grants: store_bytes $s0" >>"$RUN_DIR/growth-facts.txt"
  loadmark "growth-before"
  for r in $(seq 1 "${GROWTH_RUNS:-2}"); do
    start_svc "$gd" "$SCALE_PORT" "$gd/server.log" SCALE_PID
    sleep 1
    local idle; idle=$(rss_kb "$SCALE_PID")
    "${WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${GROWTH_DURATION:-15s}" --timeout 5s -s "$SBS_LUA" \
      "http://127.0.0.1:$SCALE_PORT/token" -- refresh "$gd/pool.txt" "$gd/pool.next" "$cid" >"$gd/wrk-$r.txt" 2>&1
    mv "$gd/pool.next" "$gd/pool.txt"
    local line; line=$(grep '^RESULT ' "$gd/wrk-$r.txt")
    n=$(kv "$line" requests)
    local rss; rss=$(rss_kb "$SCALE_PID")
    stop_pid "$SCALE_PID"; SCALE_PID=
    s1=$(stat -c %s "$gd/oauth.redb")
    awk -v r="$r" -v n="$n" -v se="$(kv "$line" status_err)" -v a="$s0" -v b="$s1" -v idle="$idle" -v rss="$rss" 'BEGIN {
      printf "growth run %d: %d refreshes (%d non-2xx), store %.1f -> %.1f MB (%.2f KB per refresh), RSS idle after restart %.1f MiB, after the run %.1f MiB\n",
        r, n, se, a / 1e6, b / 1e6, (b - a) / 1024 / n, idle / 1024, rss / 1024 }' | tee -a "$RUN_DIR/growth-facts.txt" >&2
    s0=$s1
  done
  loadmark "growth-after"
  rm -f "$gd/oauth.redb" "$gd/pool.txt" "$gd/flow.json"
}

log "run dir $RUN_DIR; $(nproc) cores; wrk -t$THREADS -c$CONNS; PIN=$PIN; phases: $PHASES"
[ "${APPEND:-0}" = 1 ] || : >"$RUN_DIR/env.txt"
{
  echo "phases $PHASES"
  echo "date $(date -Is)"
  echo "host $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  echo "ours $("$OURS_BIN" --version 2>/dev/null || echo '?') $OURS_BIN"
  echo "seed mcp-oauth-dynamicclient $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp-oauth-dynamicclient"))')"
  echo "tools $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(nginx -v 2>&1), $(redis-server --version | awk '{print $3}')"
  echo "config THREADS=$THREADS CONNS=$CONNS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS PIN=$PIN SCALE_DURATION=$SCALE_DURATION SCALE_ROUNDS=$SCALE_ROUNDS"
} >>"$RUN_DIR/env.txt"
for ph in $PHASES; do
  case $ph in
    side) phase_side ;;
    scale) phase_scale_verify; phase_scale_clients ;;
    scale_verify) phase_scale_verify ;;
    scale_clients) phase_scale_clients ;;
    growth) phase_growth ;;
    *) die "unknown phase $ph" ;;
  esac
done
# the service logs one line per request at its default level: keep only the ends of big logs
find "$RUN_DIR" -name server.log -size +1M | while read -r f; do
  { head -n 40 "$f"; echo "... ($(wc -l <"$f") lines, trimmed) ..."; tail -n 20 "$f"; } >"$f.t" && mv "$f.t" "$f"
done
"$PY" "$HERE/sbs/report.py" "$RUN_DIR" | tee "$RUN_DIR/report.md"
