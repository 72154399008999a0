#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the store tests and benchmarks (#15/#16).
#   scripts/postgres.sh start   install Debian's postgresql if missing, (re)create the cluster under $PG_ROOT
#                               on a free 127.0.0.1 port, create database "wps", print its URL
#   scripts/postgres.sh env     like start, but print `export WPS_TEST_POSTGRES_URL=…` (use with eval)
#   scripts/postgres.sh stop    stop the cluster and delete it
# PG_ROOT (default target/pg, relative to the repository) is where the cluster lives: the tests' cluster is
# target/pg, and scripts/bench.sh keeps its own under target/pg-bench so a benchmark never wipes a test session's.
# A healthy running cluster is reused, anything else (stale pid, half-made directory) is wiped first.
# initdb refuses root, so the server runs as the `postgres` user the Debian package creates.
# Durability is off (fsync, synchronous_commit) unless PG_DURABLE=1: the data is thrown away anyway;
# Benchmarks set PG_DURABLE=1 for honest numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${PG_ROOT:-target/pg}"
[[ "$root" == /* ]] || root="$(pwd)/$root"
data="$root/data"
db=wps

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

bin_dir() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$initdb" ] && dirname "$initdb"
}

ensure_installed() {
  if [ -z "$(bin_dir)" ]; then
    log "installing Debian's postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
}

as_pg() { runuser -u postgres -- "$@"; }

url() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$(cat "$root/port")" "$db"; }

healthy() {
  [ -f "$root/port" ] && [ -f "$data/postmaster.pid" ] \
    && "$(bin_dir)/pg_isready" -q -h 127.0.0.1 -p "$(cat "$root/port")" -d "$db" -U postgres
}

stop() {
  local bin
  bin=$(bin_dir || true)
  if [ -n "$bin" ] && [ -f "$data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    # A server pg_ctl could not stop (its pid file points at a live postgres): end that one process.
    local pid
    pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = postgres ]; then kill -9 "$pid" || true; fi
  fi
  rm -rf "$root"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
  ensure_installed
  if healthy; then url; echo; return; fi
  stop
  local bin port started=0
  bin=$(bin_dir)
  mkdir -p "$data"
  chown -R postgres: "$root"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$root/initdb.log" 2>&1 \
    || { cat "$root/initdb.log" >&2; exit 1; }
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${PG_DURABLE:-0}" = 1 ] && durability=""
  for _ in 1 2 3; do
    port=$(free_port)
    # Loopback only; the socket directory inside the cluster (no /var/run/postgresql needed).
    if as_pg "$bin/pg_ctl" -D "$data" -l "$root/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c max_connections=300 $durability" start >/dev/null; then
      started=1
      break
    fi
    log "start on port $port failed, retrying"; tail -n 5 "$root/server.log" >&2 || true
  done
  [ "${started:-0}" = 1 ] || { log "could not start the cluster"; exit 1; }
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
  echo "$port" >"$root/port" # written last: its presence means the cluster is complete
  url; echo
}

case "${1:-}" in
  start) start ;;
  env) printf 'export WPS_TEST_POSTGRES_URL=%s\n' "$(start)" ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
