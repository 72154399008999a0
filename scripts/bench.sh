#!/usr/bin/env bash
# End-to-end load benchmark (issue 9); BENCHMARKS.md explains the method and records results.
#
#   bash scripts/bench.sh                 # everything: build, load scenarios, cold start, RSS, emulator load
#   bash scripts/bench.sh --wait-quiet    # first wait (up to 20 min) for the 1-minute load average < 0.7
#
# Builds the release binaries, installs wrk (Debian) when missing, starts the emulator and the release
# `handler` on 127.0.0.1 (free ports), then for each scenario runs `wrk -t2 -c32 -d10s --latency` against
# a fresh handler process and records throughput, p50/p99 latency and the handler's peak RSS (VmHWM).
# Scenarios: a calibration route (bare warp, fixed JSON), negotiate (anonymous and jwt), events `connect`
# (correctly signed), publish (jwt trust → emulator REST), each with info logs to /dev/null and, where it
# matters, with logs off. Then cold start (median of spawn → first 200) and the emulator's 10 000-client
# load program. Prints a Markdown table and writes everything to target/bench/.
#
# Tunables (environment): BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_DURATION (10s),
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
wait_quiet=false
for arg in "$@"; do
  case "$arg" in
    --wait-quiet) wait_quiet=true ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

out="$repo/target/bench"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

step "tools"
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed for fixtures (free ports, signatures, tokens)"

step "build (release)"
cargo build --release -p webpubsub-control --bin handler --example calibration --example cold_start
cargo build --release -p webpubsub-emulator --bin webpubsub-emulator --example load
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
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null -I "http://127.0.0.1:$emulator_port/api/health" 2>/dev/null && break
  sleep 0.05
done
curl -fsS -o /dev/null -I "http://127.0.0.1:$emulator_port/api/health" || die "the emulator did not start"
connection_string="Endpoint=http://127.0.0.1;Port=$emulator_port;AccessKey=$access_key;Version=1.0;"

step "fixtures"
jwt_secret="bench-jwt-secret-0123456789-0123456789-abcdef"
jwt_issuer="https://issuer.bench.invalid/"
jwt_audience="api://webpubsub-control-bench"
# Signed here with Python's hmac (independent of the handler's code): key = UTF-8 access key,
# message = connection id, value = "sha256=" + hex digest.
python3 - "$access_key" >"$work/connect-fixtures.txt" <<'PY'
import hashlib, hmac, sys, uuid
key = sys.argv[1].encode()
for _ in range(1000):
    cid = uuid.uuid4().hex
    print(cid, "sha256=" + hmac.new(key, cid.encode(), hashlib.sha256).hexdigest())
PY
bearer_token=$(python3 - "$jwt_secret" "$jwt_issuer" "$jwt_audience" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, iss, aud = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"iss": iss, "aud": aud, "sub": "bench-backend", "iat": now, "exp": now + 3600,
                       "roles": ["publisher"]}).encode())
mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(mac)}")
PY
)

export BENCH_DIR="$repo/bench"
export BENCH_CONNECT_FIXTURES="$work/connect-fixtures.txt"

# The handler's settings for every scenario: anonymous negotiate (or jwt), jwt-trusted publish, events.
handler_env() {
  local identity=$1
  echo "WebPubSubConnectionString=$connection_string"
  echo "WebPubSubHub=chat"
  echo "NegotiateIdentity=$identity"
  echo "AuthJwtIssuer=$jwt_issuer"
  echo "AuthJwtAudience=$jwt_audience"
  echo "AuthJwtSecret=$jwt_secret"
  echo "PublishTrust=jwt"
  echo "PublishRequiredRole=publisher"
}

# Starts a handler ($1: anonymous|jwt, $2: RUST_LOG or "" for the default) on a free port; sets
# handler_pid and handler_port.
start_handler() {
  local identity=$1 log=$2
  handler_port=$(free_port)
  local env_args=()
  while IFS= read -r line; do env_args+=("$line"); done < <(handler_env "$identity")
  [ -n "$log" ] && env_args+=("RUST_LOG=$log")
  env -i PATH="$PATH" "${env_args[@]}" FUNCTIONS_CUSTOMHANDLER_PORT="$handler_port" \
    "$bin/handler" >/dev/null 2>"$work/handler.stderr" &
  handler_pid=$!
  pids+=("$handler_pid")
  wait_http "http://127.0.0.1:$handler_port/"
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
clock_ticks=$(getconf CLK_TCK)
# CPU time (user + system) a process has used so far, in clock ticks (fields 14 and 15 of its stat line,
# counted after the parenthesised command name, which may contain spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

rows=()
# run_wrk NAME LOGS URL SCRIPT PID: one wrk run; appends a table row. The CPU column is the server's
# (user + system) CPU time per request during the run; for publish, the emulator's is added after a `+`.
run_wrk() {
  local name=$1 logs=$2 url=$3 script=$4 pid=$5
  echo "$name ($logs): wrk -t$threads -c$connections -d$duration --latency $url" >&2
  local cpu_before emulator_cpu_before
  cpu_before=$(cpu_ticks "$pid")
  emulator_cpu_before=$(cpu_ticks "$emulator_pid")
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$BENCH_DIR/$script" "$url" \
    >"$out/wrk-${name// /_}-$logs.txt" 2>&1 || die "wrk failed; see $out/wrk-${name// /_}-$logs.txt"
  local result
  result=$(grep '^RESULT ' "$out/wrk-${name// /_}-$logs.txt") || die "no RESULT line from wrk"
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
  [ "$(field non2xx)" = 0 ] || die "$name: $(field non2xx) responses were errors (see $out)"
  [ "$(field socket_errors)" = 0 ] || echo "warning: $name: $(field socket_errors) socket errors" >&2
  local requests cpu emulator_cpu
  requests=$(field requests)
  cpu=$(( ($(cpu_ticks "$pid") - cpu_before) * 1000000 / clock_ticks / requests ))
  emulator_cpu=$(( ($(cpu_ticks "$emulator_pid") - emulator_cpu_before) * 1000000 / clock_ticks / requests ))
  [ "$emulator_cpu" -gt 0 ] && cpu="$cpu + $emulator_cpu"
  rows+=("| $name | $logs | $(printf '%.0f' "$(field rps)") | $(field p50_ms) | $(field p99_ms) | $cpu | $(peak_rss_mib "$pid") |")
}

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

step "load scenarios ($(nproc) cores; load average before: $load_before)"
calibration_port=$(free_port)
"$bin/examples/calibration" --port "$calibration_port" >/dev/null 2>&1 &
calibration_pid=$!
pids+=("$calibration_pid")
wait_http "http://127.0.0.1:$calibration_port/api/calibration"
run_wrk "calibration GET (bare warp, fixed JSON)" "-" "http://127.0.0.1:$calibration_port/api/calibration" get.lua "$calibration_pid"
BENCH_CONNECT_PATH=/api/calibration \
  run_wrk "calibration POST (connect requests, body read)" "-" "http://127.0.0.1:$calibration_port/api/calibration" connect.lua "$calibration_pid"
stop "$calibration_pid"

for logs in info off; do
  level=""; [ "$logs" = off ] && level=warn
  start_handler anonymous "$level"
  run_wrk "negotiate (anonymous)" "$logs" "http://127.0.0.1:$handler_port/api/negotiate?userId=alice" get.lua "$handler_pid"
  stop "$handler_pid"

  start_handler anonymous "$level"
  run_wrk "events connect (signed)" "$logs" "http://127.0.0.1:$handler_port/api/events" connect.lua "$handler_pid"
  stop "$handler_pid"

  start_handler anonymous "$level"
  BENCH_BEARER_TOKEN="$bearer_token" \
    run_wrk "publish → emulator" "$logs" "http://127.0.0.1:$handler_port/api/publish" publish.lua "$handler_pid"
  stop "$handler_pid"
done

start_handler jwt ""
BENCH_BEARER_TOKEN="$bearer_token" \
  run_wrk "negotiate (jwt bearer)" info "http://127.0.0.1:$handler_port/api/negotiate" get.lua "$handler_pid"
stop "$handler_pid"
emulator_rss=$(peak_rss_mib "$emulator_pid")

step "cold start ($cold_runs spawns)"
cold_env=()
while IFS= read -r line; do cold_env+=("$line"); done < <(handler_env anonymous)
env -i PATH="$PATH" "${cold_env[@]}" "$bin/examples/cold_start" --binary "$bin/handler" --runs "$cold_runs" \
  --function-path '/api/negotiate?userId=alice' >"$out/cold-start.txt" || die "cold start failed; see $out/cold-start.txt"
cold_ready=$(grep '^RESULT cold_start_ready_ms' "$out/cold-start.txt")
cold_function=$(grep '^RESULT cold_start_function_ms' "$out/cold-start.txt")

if [ "$emulator_connections" != 0 ]; then
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
  echo "load average before $load_before, after $load_after. Load generator: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), -t$threads -c$connections -d$duration, sharing the cores."
  echo
  echo "| scenario | logs | requests/s | p50 ms | p99 ms | server CPU µs/request | peak RSS MiB |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Cold start (spawn → first 200), $cold_runs runs, ms: readiness \`GET /\` $(cut -d' ' -f3- <<<"$cold_ready"); first negotiate $(cut -d' ' -f3- <<<"$cold_function")."
  echo "Emulator (publish target) peak RSS: $emulator_rss MiB."
  if [ -f "$out/emulator-load.txt" ] && [ "$emulator_connections" != 0 ]; then
    echo
    echo "Emulator load program (\`--connections $emulator_connections --broadcasts 20\`):"
    echo
    echo '```text'
    cat "$out/emulator-load.txt"
    echo '```'
  fi
} | tee "$out/results.md"
