#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite: installed from the OS packages when
# missing, run as an unprivileged user (CI runs as root; postgres refuses root),
# on its own port and data directory so it never touches a system cluster.
#   deploy/dev/postgres.sh start|stop|url
set -euo pipefail

PORT="${RAGLINE_PG_PORT:-55432}"
DATA="${RAGLINE_PG_DATA:-/tmp/ragline-pg-$PORT}"
DB=ragline_test
URL="postgresql+psycopg://ragline@127.0.0.1:$PORT/$DB"

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$dir" ] && [ "$(id -u)" = 0 ]; then
    echo "postgres.sh: installing PostgreSQL from the OS packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  [ -n "$dir" ] || { echo "postgres.sh: PostgreSQL is not installed and I am not root to install it" >&2; exit 1; }
  echo "$dir"
}

as_db_user() {
  if [ "$(id -u)" = 0 ]; then
    id -u ragline-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin ragline-pg
    runuser -u ragline-pg -- "$@"
  else
    "$@"
  fi
}

start() {
  local bin
  bin=$(pg_bin)
  if [ -f "$DATA/postmaster.pid" ] && as_db_user "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "$URL"; return 0
  fi
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && { as_db_user true 2>/dev/null || true; chown ragline-pg "$DATA"; }
  as_db_user "$bin/initdb" -D "$DATA" -U ragline --auth=trust -E UTF8 --no-sync >/dev/null
  as_db_user "$bin/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=512MB" \
    start >/dev/null
  as_db_user "$bin/psql" -h 127.0.0.1 -p "$PORT" -U ragline -d postgres -qAt \
    -c "CREATE DATABASE $DB" >/dev/null
  echo "$URL"
}

stop() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$bin" ] && [ -f "$DATA/postmaster.pid" ]; then
    as_db_user "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$DATA"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
