#!/usr/bin/env bash
# End-to-end load benchmark (issue 9); BENCHMARKS.md explains the method and records results.
#
#   bash scripts/bench.sh                 # everything: build, load scenarios, cold start, RSS, emulator load
#   bash scripts/bench.sh --wait-quiet    # first wait (up to 20 min) for the 1-minute load average < 0.7
#   bash scripts/bench.sh durable identity   # only the named scenario groups (any order, combinable):
#       http      negotiate (anonymous, jwt), events connect, publish; info logs and logs off
#       durable   #15: sends/s persisted and broadcast on SQLite and PostgreSQL beside each backend's bare
#                 send-transaction ceiling (benches/store.rs, STORE_BENCH_ONLY=send), then outbox lag p50/p99
#                 (bench/durable_lag.rs); PostgreSQL is a throwaway PG_DURABLE=1 cluster (scripts/postgres.sh) under
#                 target/pg-bench, apart from the tests' target/pg
#       identity  #18: negotiate in identity mode (keyless, :generateToken on the emulator) beside key mode
#       cold      cold start (spawn → first 200)
#       emulator  the emulator's 10 000-client load program
#     The calibration routes always run first: every row is read against them. No group named = all of them.
#
# Builds the release binaries, installs wrk (Debian) when missing, starts the emulator and the release
# `handler` on 127.0.0.1 (free ports), then for each scenario runs `wrk -t2 -c32 -d10s --latency` against
# a fresh handler process and records throughput (also as a share of the calibration route), p50/p99
# latency, CPU time per request (server, wrk) and the server's peak RSS (VmHWM).
# Scenarios: a calibration route (bare warp, fixed JSON), negotiate (anonymous and jwt), events `connect`
# (correctly signed), publish (jwt trust → emulator REST), each with info logs to /dev/null and, where it
# matters, with logs off. Then cold start (median of spawn → first 200) and the emulator's 10 000-client
# load program. Prints a Markdown table and writes everything to target/bench/.
# The programs it builds live under bench/: calibration.rs and cold_start.rs (examples of the handler
# package), emulator_load.rs (the emulator's `load` example); bench/*.lua are the wrk scripts and
# bench/fixtures.py makes the signed connect fixtures and the bearer token.
#
# Tunables (environment): BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_DURATION (10s),
# BENCH_ROUNDS (3: each scenario runs that often on a fresh server; the median round is reported),
# BENCH_COLD_RUNS (21), BENCH_EMULATOR_CONNECTIONS (10000; 0 skips the emulator load program).
# Loopback only; every wait is bounded; every process started here is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

threads=${BENCH_THREADS:-2}
connections=${BENCH_CONNECTIONS:-32}
duration=${BENCH_DURATION:-10s}
cold_runs=${BENCH_COLD_RUNS:-21}
emulator_connections=${BENCH_EMULATOR_CONNECTIONS:-10000}
rounds=${BENCH_ROUNDS:-3}
wait_quiet=false
selected=()
for arg in "$@"; do
  case "$arg" in
    --wait-quiet) wait_quiet=true ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    http | durable | identity | cold | emulator) selected+=("$arg") ;;
    *) echo "bench.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#selected[@]} -gt 0 ] || selected=(http cold emulator durable identity)
want() { [[ " ${selected[*]} " == *" $1 "* ]]; }

out="$repo/target/bench"
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
pg_started=false
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if $pg_started; then bench_postgres stop || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*" >&2; }
# The durable group's own PostgreSQL cluster: never the tests' target/pg (stop deletes the cluster).
bench_postgres() { PG_ROOT=target/pg-bench PG_DURABLE=1 bash scripts/postgres.sh "$1"; }
die() { echo "bench.sh: $*" >&2; exit 1; }

step "tools"
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed for fixtures (free ports, signatures, tokens)"
command -v curl >/dev/null || die "curl is needed for readiness and sanity checks"

step "build (release): ${selected[*]}"
examples=(--example calibration)
want cold && examples+=(--example cold_start)
want durable && examples+=(--example durable_lag)
cargo build --release -p webpubsub-control --bin handler "${examples[@]}"
if want emulator; then
  cargo build --release -p webpubsub-emulator --bin webpubsub-emulator --example load
else
  cargo build --release -p webpubsub-emulator --bin webpubsub-emulator
fi
# The store ceiling is benches/store.rs (bench profile = release settings); built now, run below.
want durable && cargo bench -p webpubsub-control --bench store --no-run
bin="$repo/target/release"

load1() { cut -d' ' -f1 /proc/loadavg; }
if $wait_quiet; then
  step "waiting for a quiet machine (1-minute load average < 0.7, at most 20 minutes)"
  for _ in $(seq 1 20); do
    python3 -c "import sys; sys.exit(0 if $(load1) < 0.7 else 1)" && break
    echo "load average $(load1); waiting 60 s" >&2
    sleep 60
  done
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 5 s) until GET $1 answers 200.
wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  die "no answer from $1"
}

step "emulator"
access_key="bench-access-key-0123456789-0123456789-abcdef"
emulator_port=$(free_port)
RUST_LOG=warn "$bin/webpubsub-emulator" --port "$emulator_port" --access-key "$access_key" \
  >"$work/emulator.log" 2>&1 &
emulator_pid=$!
pids+=("$emulator_pid")
wait_http "http://127.0.0.1:$emulator_port/api/health"
connection_string="Endpoint=http://127.0.0.1;Port=$emulator_port;AccessKey=$access_key;Version=1.0;"

step "fixtures"
jwt_secret="bench-jwt-secret-0123456789-0123456789-abcdef"
jwt_issuer="https://issuer.bench.invalid/"
jwt_audience="api://webpubsub-control-bench"
# Signed by bench/fixtures.py with Python's hmac (independent of the handler's code).
python3 bench/fixtures.py connect "$access_key" >"$work/connect-fixtures.txt"
bearer_token=$(python3 bench/fixtures.py token "$jwt_secret" "$jwt_issuer" "$jwt_audience")

export BENCH_DIR="$repo/bench"
export BENCH_CONNECT_FIXTURES="$work/connect-fixtures.txt"

# The handler's settings for every scenario: anonymous negotiate (or jwt), jwt-trusted publish, events.
# `keyless` (#18): anonymous negotiate, no access key, managed identity from the identity emulator's
# endpoint (as `handler dev --identity` and tests/e2e/identity.rs wire it). `store_connection` (when set)
# becomes StoreConnectionString (#15).
store_connection=""
handler_env() {
  local identity=$1
  if [ "$identity" = keyless ]; then
    identity=anonymous
    echo "WebPubSubConnectionString__serviceUri=http://127.0.0.1:$identity_emulator_port"
    echo "WebPubSubConnectionString__credential=managedidentity"
    echo "IDENTITY_ENDPOINT=http://127.0.0.1:$identity_emulator_port/identity/token"
    echo "IDENTITY_HEADER=$identity_header"
    echo "EventsAllowUnauthenticated=true"
  else
    echo "WebPubSubConnectionString=$connection_string"
  fi
  [ -n "$store_connection" ] && echo "StoreConnectionString=$store_connection"
  echo "WebPubSubHub=chat"
  echo "NegotiateIdentity=$identity"
  echo "AuthJwtIssuer=$jwt_issuer"
  echo "AuthJwtAudience=$jwt_audience"
  echo "AuthJwtSecret=$jwt_secret"
  echo "PublishTrust=jwt"
  echo "PublishRequiredRole=publisher"
}

# Starts a handler ($1: anonymous|jwt|keyless, $2: RUST_LOG or "" for the default, $3: where its stdout
# goes, /dev/null unless given) on a free port; sets handler_pid and handler_port.
start_handler() {
  local identity=$1 log=$2 stdout=${3:-/dev/null}
  handler_port=$(free_port)
  local env_args=()
  while IFS= read -r line; do env_args+=("$line"); done < <(handler_env "$identity")
  [ -n "$log" ] && env_args+=("RUST_LOG=$log")
  env -i PATH="$PATH" "${env_args[@]}" FUNCTIONS_CUSTOMHANDLER_PORT="$handler_port" \
    "$bin/handler" >"$stdout" 2>"$work/handler.stderr" &
  handler_pid=$!
  pids+=("$handler_pid")
  wait_http "http://127.0.0.1:$handler_port/"
}

# Stops a process started here and forgets its PID (so the exit trap never signals a reused PID).
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=() pid
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  pids=("${kept[@]}")
}

# The durable scenarios' subscriber (#15): bench/durable_lag.rs in listen mode, a WebSocket client of the
# emulator in group conversation:$durable_conversation; started once the handler is up, READY within 15 s.
start_listener() {
  "$bin/examples/durable_lag" --handler "$server_url" --conversation "$durable_conversation" --user alice \
    --listen-secs 120 --idle-secs 3 >"$work/listener.out" 2>"$work/listener.err" &
  listener_pid=$!
  pids+=("$listener_pid")
  for _ in $(seq 1 150); do
    grep -q '^READY' "$work/listener.out" 2>/dev/null && return 0
    kill -0 "$listener_pid" 2>/dev/null || break
    sleep 0.1
  done
  die "the durable subscriber did not get ready: $(cat "$work/listener.err")"
}

# After a durable round: the subscriber exits 3 s after the last frame (at most 120 s); every answered send
# must have reached it (frames ≥ answered sends: wrk does not count answers in flight when it stops).
check_listener() {
  local frames requests
  wait "$listener_pid" || die "the durable subscriber failed: $(cat "$work/listener.err")"
  stop "$listener_pid"
  frames=$(sed -n 's/^RESULT listen frames=//p' "$work/listener.out")
  requests=$(cat "$work/last-requests")
  [ "${frames:-0}" -ge "$requests" ] || die "only ${frames:-0} of $requests sent messages reached the subscriber"
  echo "$frames / $requests" >"$work/frames-$kind"
}

peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
clock_ticks=$(getconf CLK_TCK)
# CPU time (user + system) a process has used so far, in clock ticks (fields 14 and 15 of its stat line,
# counted after the parenthesised command name, which may contain spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

rows=() durable_rows=()
ceiling_get=1 ceiling_post=1 ceiling_sqlite=1 ceiling_postgres=1 identity_round=0
# run_wrk KIND LABEL URL PID: one wrk run against the server PID; appends one line to $work/rounds:
#   rps p50_ms p99_ms server_cpu wrk_cpu machine_budget peak_rss_mib
# CPU figures are user + system µs per request during the run: the server's (for publish, durable sends
# and identity-mode negotiate `handler + emulator`, the emulator being $peer_pid when set), wrk's, and the
# machine's budget (cores / throughput); the budget minus the others is kernel work charged elsewhere, idle
# time and whatever else was running.
run_wrk() {
  local kind=$1 label=$2 url=$3 pid=$4 script=get.lua bearer="" path=""
  case "$kind" in
    calibration-post) script=connect.lua path=/api/calibration ;;
    connect) script=connect.lua path=/api/events ;;
    publish) script=publish.lua bearer=$bearer_token ;;
    negotiate-jwt) bearer=$bearer_token ;;
    durable-*) script=send.lua ;;
  esac
  local peer=${peer_pid:-$emulator_pid}
  local cpu_before emulator_cpu_before report="$out/wrk-$label.txt" TIMEFORMAT='%U %S'
  echo "$label: wrk -t$threads -c$connections -d$duration --latency -s bench/$script $url" >&2
  cpu_before=$(cpu_ticks "$pid")
  emulator_cpu_before=$(cpu_ticks "$peer")
  { time BENCH_BEARER_TOKEN="$bearer" BENCH_CONNECT_PATH="$path" BENCH_RUN="$label" \
      wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$BENCH_DIR/$script" "$url" \
      >"$report" 2>&1 || die "wrk failed; see $report"; } 2>"$work/wrk-time"
  local result
  result=$(grep '^RESULT ' "$report") || die "no RESULT line from wrk; see $report"
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
  [ "$(field non2xx)" = 0 ] || die "$label: $(field non2xx) responses were errors (see $report)"
  [ "$(field socket_errors)" = 0 ] || echo "warning: $label: $(field socket_errors) socket errors" >&2
  local requests server_us emulator_us wrk_us budget_us
  requests=$(field requests)
  server_us=$(( ($(cpu_ticks "$pid") - cpu_before) * 1000000 / clock_ticks / requests ))
  emulator_us=$(( ($(cpu_ticks "$peer") - emulator_cpu_before) * 1000000 / clock_ticks / requests ))
  case "$kind" in publish | durable-* | negotiate-keyless) server_us="$server_us+$emulator_us" ;; esac
  echo "$requests" >"$work/last-requests"
  wrk_us=$(awk -v n="$requests" '{ printf "%d", ($1 + $2) * 1000000 / n }' "$work/wrk-time")
  budget_us=$(awk -v c="$(nproc)" -v r="$(field rps)" 'BEGIN { printf "%d", c * 1000000 / r }')
  echo "$(field rps) $(field p50_ms) $(field p99_ms) $server_us $wrk_us $budget_us $(peak_rss_mib "$pid")" >>"$work/rounds"
}

# start_server KIND LOGS: a fresh server for one round; sets server_pid and server_url.
start_server() {
  local kind=$1 level=""
  [ "$2" = off ] && level=warn
  case "$kind" in
    calibration-*)
      local port
      port=$(free_port)
      "$bin/examples/calibration" --port "$port" >/dev/null 2>&1 &
      server_pid=$!
      pids+=("$server_pid")
      server_url="http://127.0.0.1:$port/api/calibration"
      wait_http "$server_url"
      return ;;
    negotiate-jwt) start_handler jwt "$level" ;;
    negotiate-keyless)
      identity_round=$((identity_round + 1))
      start_handler keyless "${level:-info},webpubsub_control::identity=info" "$work/keyless-$identity_round.log" ;;
    *) start_handler anonymous "$level" ;;
  esac
  server_pid=$handler_pid
  case "$kind" in
    negotiate-keyless) server_url="http://127.0.0.1:$handler_port/api/negotiate?userId=alice" ;;
    durable-*)
      server_url="http://127.0.0.1:$handler_port"
      start_listener ;;
    negotiate) server_url="http://127.0.0.1:$handler_port/api/negotiate?userId=alice" ;;
    negotiate-jwt) server_url="http://127.0.0.1:$handler_port/api/negotiate" ;;
    connect) server_url="http://127.0.0.1:$handler_port/api/events" ;;
    publish) server_url="http://127.0.0.1:$handler_port/api/publish" ;;
  esac
}

# scenario KIND LOGS NAME: $rounds rounds, each on a fresh server; the row shows the median round (by
# throughput) with the range of throughput over all rounds and the largest peak RSS.
scenario() {
  local kind=$1 logs=$2 name=$3 round
  : >"$work/rounds"
  for round in $(seq 1 "$rounds"); do
    start_server "$kind" "$logs"
    run_wrk "$kind" "$kind-$logs-$round" "$server_url" "$server_pid"
    case "$kind" in durable-*) check_listener ;; esac
    stop "$server_pid"
  done
  local median low high rss
  median=$(sort -n -k1,1 "$work/rounds" | sed -n "$(( (rounds + 1) / 2 ))p")
  low=$(sort -n -k1,1 "$work/rounds" | head -1 | cut -d' ' -f1)
  high=$(sort -n -k1,1 "$work/rounds" | tail -1 | cut -d' ' -f1)
  rss=$(sort -n -k7,7 "$work/rounds" | tail -1 | cut -d' ' -f7)
  read -r rps p50 p99 server_us wrk_us budget_us _ <<<"$median"
  # Read against the calibration route of the same request method: GET for negotiate, POST otherwise.
  local ceiling share
  case "$kind" in
    calibration-get) ceiling_get=$rps ceiling=$rps ;;
    calibration-post) ceiling_post=$rps ceiling=$rps ;;
    negotiate*) ceiling=$ceiling_get ;;
    durable-sqlite) ceiling=$ceiling_sqlite ;;
    durable-postgres) ceiling=$ceiling_postgres ;;
    *) ceiling=$ceiling_post ;;
  esac
  share=$(awk -v r="$rps" -v c="$ceiling" 'BEGIN { printf "%.0f %%", 100 * r / c }')
  if [[ "$kind" == durable-* ]]; then
    local met=no
    awk -v r="$rps" -v c="$ceiling" 'BEGIN { exit !(r >= 0.5 * c) }' && met=yes
    durable_rows+=("| $name | $(printf '%.0f' "$rps") | $(printf '%.0f–%.0f' "$low" "$high") | $(printf '%.0f' "$ceiling") | $share | $met | $p50 | $p99 | $server_us | $wrk_us | $(cat "$work/frames-$kind") |")
    return
  fi
  rows+=("| $name | $logs | $(printf '%.0f' "$rps") | $(printf '%.0f–%.0f' "$low" "$high") | $share | $p50 | $p99 | $server_us | $wrk_us | $budget_us | $rss |")
}

if want http; then
  step "sanity checks (one request each, bodies checked)"
  start_handler anonymous ""
  curl -fsS "http://127.0.0.1:$handler_port/api/negotiate?userId=alice" | grep -q '"token"' \
    || die "negotiate did not answer with a token"
  read -r cid sig <"$BENCH_CONNECT_FIXTURES"
  status=$(curl -sS -o "$work/connect.json" -w '%{http_code}' -X POST "http://127.0.0.1:$handler_port/api/events" \
    -H 'Content-Type: application/json' -H 'ce-specversion: 1.0' -H 'ce-type: azure.webpubsub.sys.connect' \
    -H 'ce-eventName: connect' -H 'ce-id: 1' -H "ce-source: /hubs/chat/client/$cid" -H 'ce-hub: chat' \
    -H "ce-connectionId: $cid" -H 'ce-userId: alice' -H "ce-signature: $sig" -H 'WebHook-Request-Origin: 127.0.0.1' \
    --data '{"claims":{"sub":["alice"]},"subprotocols":["json.webpubsub.azure.v1"]}')
  [ "$status" = 200 ] || die "events connect answered $status: $(cat "$work/connect.json")"
  status=$(curl -sS -o "$work/bad-signature.json" -w '%{http_code}' -X POST "http://127.0.0.1:$handler_port/api/events" \
    -H 'Content-Type: application/json' -H 'ce-specversion: 1.0' -H 'ce-type: azure.webpubsub.sys.connect' \
    -H 'ce-eventName: connect' -H 'ce-id: 1' -H "ce-source: /hubs/chat/client/x$cid" -H 'ce-hub: chat' \
    -H "ce-connectionId: x$cid" -H "ce-signature: $sig" --data '{}')
  [ "$status" = 401 ] || die "a wrong signature was not refused (status $status): the connect scenario would prove nothing"
  status=$(curl -sS -o "$work/publish.json" -w '%{http_code}' -X POST "http://127.0.0.1:$handler_port/api/publish" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $bearer_token" \
    --data '{"group":"bench","message":"hello"}')
  [ "$status" = 200 ] || die "publish answered $status: $(cat "$work/publish.json")"
  stop "$handler_pid"
fi

step "load scenarios: ${selected[*]} ($(nproc) cores, $rounds rounds each; load average before: $load_before)"
scenario calibration-get - "calibration: bare warp GET, fixed JSON"
scenario calibration-post - "calibration: bare warp POST, connect-shaped request"
if want http; then
  for logs in info off; do
    scenario negotiate "$logs" "negotiate (anonymous)"
    scenario connect "$logs" "events connect (signed)"
    scenario publish "$logs" "publish → emulator (jwt trust)"
  done
  scenario negotiate-jwt info "negotiate (jwt bearer)"
fi

if want durable; then
  step "durable (#15): each backend's bare send-transaction ceiling (benches/store.rs, STORE_BENCH_ONLY=send)"
  # A cluster left running may be a non-durable one (fsync off): always a fresh PG_DURABLE=1 cluster.
  bench_postgres stop
  pg_started=true
  pg_url=$(bench_postgres start)
  TMPDIR="$work" WPS_TEST_POSTGRES_URL="$pg_url" STORE_BENCH_SECONDS="${BENCH_CEILING_SECONDS:-5}" STORE_BENCH_ONLY=send \
    cargo bench -q -p webpubsub-control --bench store >"$out/store-ceiling.txt" \
    || die "the store ceiling failed; see $out/store-ceiling.txt"
  ceiling_sqlite=$(grep 'one task' "$out/store-ceiling.txt" | sed -n '1s|.*one task: \([0-9]*\)/s.*|\1|p')
  ceiling_postgres=$(grep 'one task' "$out/store-ceiling.txt" | sed -n '2s|.*one task: \([0-9]*\)/s.*|\1|p')
  [ -n "$ceiling_sqlite" ] && [ -n "$ceiling_postgres" ] || die "no ceilings in $out/store-ceiling.txt"
  durable_conversation=bench-durable
  export BENCH_CONVERSATION=$durable_conversation BENCH_MEMBER=alice
  lag_rate=${BENCH_LAG_RATE:-100} lag_count=${BENCH_LAG_COUNT:-1500}
  for backend in sqlite postgres; do
    case "$backend" in
      sqlite) store_connection="sqlite:$work/durable.db" label="SQLite (a file, WAL)" ;;
      postgres) store_connection="$pg_url" label="PostgreSQL (loopback, durable)" ;;
    esac
    step "durable (#15) on $backend: the conversation, sends under wrk, outbox lag"
    start_handler anonymous warn
    status=$(curl -sS -o "$work/conversation.json" -w '%{http_code}' -X POST \
      "http://127.0.0.1:$handler_port/api/manage/conversations" -H 'Content-Type: application/json' \
      -H "Authorization: Bearer $bearer_token" --data "{\"id\":\"$durable_conversation\",\"members\":[\"alice\"]}")
    [ "$status" = 201 ] || die "creating the conversation answered $status: $(cat "$work/conversation.json")"
    stop "$handler_pid"
    scenario "durable-$backend" info "$label"
    start_handler anonymous ""
    "$bin/examples/durable_lag" --handler "http://127.0.0.1:$handler_port" --conversation "$durable_conversation" \
      --user alice --rate "$lag_rate" --count "$lag_count" >"$out/lag-$backend.txt" 2>&1 \
      || die "the lag probe failed; see $out/lag-$backend.txt"
    stop "$handler_pid"
  done
  store_connection=""
  bench_postgres stop
  pg_started=false
fi

if want identity; then
  step "identity (#18): a second emulator in identity mode (local auth disabled)"
  identity_header="bench-identity-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  identity_emulator_port=$(free_port)
  RUST_LOG=warn "$bin/webpubsub-emulator" --port "$identity_emulator_port" --access-key "$access_key" \
    --identity-header "$identity_header" --disable-local-auth >"$work/identity-emulator.log" 2>&1 &
  identity_emulator_pid=$!
  pids+=("$identity_emulator_pid")
  wait_http "http://127.0.0.1:$identity_emulator_port/api/health"
  start_handler keyless warn
  curl -fsS "http://127.0.0.1:$handler_port/api/negotiate?userId=alice" | grep -q '"token"' \
    || die "identity-mode negotiate did not answer with a token"
  stop "$handler_pid"
  scenario negotiate off "negotiate (anonymous), key mode"
  peer_pid=$identity_emulator_pid
  scenario negotiate-keyless off "negotiate (anonymous), identity mode: :generateToken"
  peer_pid=""
  identity_calls=$(cat "$work"/keyless-*.log | grep -c 'fetched an identity token' || true)
  identity_failures=$(cat "$work"/keyless-*.log | grep -c 'could not fetch an identity token' || true)
  identity_emulator_rss=$(peak_rss_mib "$identity_emulator_pid")
fi
emulator_rss=$(peak_rss_mib "$emulator_pid")

if want cold; then
  step "cold start ($cold_runs spawns)"
  cold_env=()
  while IFS= read -r line; do cold_env+=("$line"); done < <(handler_env anonymous)
  env -i PATH="$PATH" "${cold_env[@]}" "$bin/examples/cold_start" --binary "$bin/handler" --runs "$cold_runs" \
    --function-path '/api/negotiate?userId=alice' >"$out/cold-start.txt" || die "cold start failed; see $out/cold-start.txt"
  cold_ready=$(grep '^RESULT cold_start_ready_ms' "$out/cold-start.txt")
  cold_function=$(grep '^RESULT cold_start_function_ms' "$out/cold-start.txt")
fi

if want emulator && [ "$emulator_connections" != 0 ]; then
  step "emulator load program ($emulator_connections WebSocket clients, one group broadcast)"
  stop "$emulator_pid"
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  "$bin/examples/load" --connections "$emulator_connections" --broadcasts 20 --time-limit-secs 300 \
    >"$out/emulator-load.txt" 2>&1 || die "emulator load program failed; see $out/emulator-load.txt"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "## Results $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr);"
  echo "load average before $load_before, after $load_after. Load generator: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), -t$threads -c$connections -d$duration, sharing the cores; median of $rounds rounds."
  echo
  echo "| scenario | logs | requests/s | range | of ceiling | p50 ms | p99 ms | server CPU µs/req | wrk CPU µs/req | machine µs/req | peak RSS MiB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  if want durable; then
    echo "Durable sends (#15): \`POST /api/conversations/$durable_conversation/messages\` by member alice (X-User-Id), one conversation, a unique client id per request, info logs; a WebSocket client of the emulator in \`conversation:$durable_conversation\` receives every broadcast. Ceiling: \`benches/store.rs\` with \`STORE_BENCH_ONLY=send\`, the same send transaction in a loop on one task, this run. Server CPU = handler + emulator (PostgreSQL's own processes not counted)."
    echo
    echo "| backend | sends/s | range | ceiling/s | of ceiling | ≥ 0.5 × ceiling | p50 ms | p99 ms | server CPU µs/req | wrk CPU µs/req | frames received / sends answered |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${durable_rows[@]}"
    echo
    for backend in sqlite postgres; do
      echo "Outbox lag on $backend ($lag_count messages at $lag_rate/s, immediate try; ms): $(sed -n 's/^RESULT lag //p' "$out/lag-$backend.txt")"
    done
    echo
  fi
  if want identity; then
    echo "Identity mode (#18): $identity_calls successful identity-endpoint calls (and $identity_failures failed) over $rounds identity-mode handler processes, counted from the handler's log line per fetch. Identity emulator peak RSS: $identity_emulator_rss MiB."
    echo
  fi
  if want cold; then
    echo "Cold start (spawn → first 200), $cold_runs runs, ms: readiness \`GET /\` $(cut -d' ' -f3- <<<"$cold_ready"); first negotiate $(cut -d' ' -f3- <<<"$cold_function")."
  fi
  echo "Emulator (publish target) peak RSS: $emulator_rss MiB."
  if want emulator && [ -f "$out/emulator-load.txt" ] && [ "$emulator_connections" != 0 ]; then
    echo
    echo "Emulator load program (\`--connections $emulator_connections --broadcasts 20\`):"
    echo
    echo '```text'
    cat "$out/emulator-load.txt"
    echo '```'
  fi
} | tee "$out/results.md"
