#!/usr/bin/env bash
# API fuzzing: schemathesis (pinned in tests/fuzz/requirements.txt) against the real debug `handler` binary in
# production mode, with the real `webpubsub-emulator` binary as a healthy upstream, both on loopback ports.
# Every check runs except ignored_auth (the Functions host checks keys, not the handler) and
# positive_data_acceptance (configured policy refuses some schema-valid input). Seeded and bounded: at most
# FUZZ_MAX_EXAMPLES cases per operation and FUZZ_MAX_SECONDS (default 150) in all. Its .hypothesis/ and
# reports go to target/fuzz/. Any failure fails the script; schemathesis prints the reproducing request
# (a curl line) for each one.
#
#   scripts/fuzz.sh                       # uses `schemathesis` on PATH, or target/fuzz/venv (made by .ci/run)
#   FUZZ_SEED=7 scripts/fuzz.sh           # another seed
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/target/fuzz"
mkdir -p "$out"

schemathesis_bin=$(command -v schemathesis || true)
[ -x "$out/venv/bin/schemathesis" ] && schemathesis_bin="$out/venv/bin/schemathesis"
if [ -z "$schemathesis_bin" ]; then
  echo "schemathesis not found: python3 -m venv target/fuzz/venv && target/fuzz/venv/bin/pip install --require-hashes -r tests/fuzz/requirements.txt" >&2
  exit 1
fi

# The same build as .ci/run's (a no-op there): both binaries, one feature resolution.
cargo build --quiet --workspace --bins

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
handler_port=$(free_port)
emulator_port=$(free_port)
access_key="fuzz-access-key-0123456789abcdefghijklmnopqrstuv"
hub="chat"

rm -f "$out"/fuzz-store.db*
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

target/debug/webpubsub-emulator --port "$emulator_port" --access-key "$access_key" \
  --event-handler "$hub=http://127.0.0.1:$handler_port/api/events" >"$out/emulator.log" 2>&1 &
pids+=($!)
env FUNCTIONS_CUSTOMHANDLER_PORT="$handler_port" \
  WebPubSubConnectionString="Endpoint=http://127.0.0.1;Port=$emulator_port;AccessKey=$access_key;Version=1.0;" \
  WebPubSubHub="$hub" NegotiateIdentity=anonymous PublishTrust=functionkey \
  StoreConnectionString="sqlite:$out/fuzz-store.db" \
  NegotiateAllowedGroups='*' NegotiateAllowedRoles='webpubsub.sendToGroup.*,webpubsub.joinLeaveGroup.*' \
  EventsUserEventBehavior=echo RUST_LOG=warn \
  target/debug/handler >"$out/handler.log" 2>&1 &
pids+=($!)

wait_for() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}
wait_for "$emulator_port" emulator "$out/emulator.log"
wait_for "$handler_port" handler "$out/handler.log"

# The durable routes (#15: manage, conversations, outbox) are not fuzz-clean yet: their first run found 12
# spec/handler mismatches (a required header not enforced, schema-violating bodies accepted, undeclared methods
# not answered 405). They stay out of the gate until fixed; FUZZ_EXCLUDE_PATHS= (empty) fuzzes everything.
# /api/notifications (#16) is a catch-all function like them and shares their one remaining finding, ST205: the
# server's 405 for a method no path of the function takes lists the function's methods, not the path's.
durable_paths='^/(api/(manage|conversations|notifications)|outbox)'
started=$(date +%s)
status=0
(
  cd "$out"
  FUZZ_ACCESS_KEY="$access_key" FUZZ_HUB="$hub" PYTHONPATH="$root/tests/fuzz" SCHEMATHESIS_HOOKS=hooks \
    timeout --signal=INT --kill-after=10 "$((${FUZZ_MAX_SECONDS:-150} + 15))" \
    "$schemathesis_bin" --config-file "$root/tests/fuzz/schemathesis.toml" run "$root/openapi.yaml" \
      --url "http://127.0.0.1:$handler_port" \
      --checks all --exclude-checks ignored_auth,positive_data_acceptance \
      --exclude-path-regex "${FUZZ_EXCLUDE_PATHS-$durable_paths}" \
      --seed "${FUZZ_SEED:-17}" --max-examples "${FUZZ_MAX_EXAMPLES:-60}" --max-time "${FUZZ_MAX_SECONDS:-150}" \
      --workers 1 --request-timeout 10 --generation-database "$out/.hypothesis" \
      --report junit,ndjson --report-dir "$out/report" \
      --no-color
) || status=$?
echo "fuzzing took $(($(date +%s) - started)) s; reports in target/fuzz/report, logs in target/fuzz/*.log"
if grep -qE 'panicked|internal error.*reference=|reference=.*internal error' "$out/handler.log"; then
  echo "the handler logged a panic or an internal error:" >&2
  grep -E 'panicked|internal error.*reference=|reference=.*internal error' "$out/handler.log" | head -20 >&2
  status=1
fi
exit "$status"
