#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, from Debian's packages (postgresql-NN), in a directory of its own.
#
#   scripts/postgres.sh check        exit 0 when initdb/pg_ctl are installed (prints their folder)
#   scripts/postgres.sh start DIR    initdb in DIR, start on 127.0.0.1 at a free port, print the SQLAlchemy URL
#   scripts/postgres.sh url DIR      print the URL of the server in DIR again
#   scripts/postgres.sh stop DIR     stop the server in DIR and delete DIR
#
# The server listens on 127.0.0.1 only, its socket lives in DIR, and it asks for a random password
# (scram-sha-256). PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user
# (created by Debian's package) or, failing that, a system user `kouiki-pg` created here. Durability is off
# (fsync, synchronous_commit): the data is thrown away anyway and the tests stay fast.
set -euo pipefail

PG_DB_USER=kouiki

die() { echo "postgres.sh: $*" >&2; exit 1; }

# The newest installed server binaries: Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH.
bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
    echo "$dir"
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  else
    return 1
  fi
}

# The operating-system user the server runs as (empty: the current user, when not root).
server_user() {
  if [[ $(id -u) -ne 0 ]]; then
    echo ""
  elif id postgres >/dev/null 2>&1; then
    echo postgres
  else
    id kouiki-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin kouiki-pg
    echo kouiki-pg
  fi
}

# Run a command as the server's user.
as_server() {
  local user
  user=$(server_user)
  if [[ -z "$user" ]]; then
    "$@"
  else
    runuser -u "$user" -- "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir=$1 bin user port password
  bin=$(bindir) || die "PostgreSQL is not installed (apt-get install -y postgresql)"
  mkdir -p "$dir"
  [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd)
  user=$(server_user)
  if [[ -n "$user" ]]; then
    chown "$user" "$dir"
    chmod 0700 "$dir"
  fi
  # The server's user must reach DIR through its parents (true under /tmp; not under root's home).
  as_server test -w "$dir" || die "the server's user ($user) cannot write to $dir; use a folder under /tmp"
  port=$(free_port)
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  as_server bash -c "umask 077; printf '%s\n' '$password' > '$dir/pwfile'"
  as_server "$bin/initdb" --pgdata="$dir/data" --username="$PG_DB_USER" --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  as_server rm -f "$dir/pwfile"
  as_server "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait --timeout=60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
-c full_page_writes=off -c max_connections=100" start >/dev/null \
    || { cat "$dir/server.log" >&2; die "the server did not start"; }
  (umask 077; echo "postgresql+psycopg2://$PG_DB_USER:$password@127.0.0.1:$port/postgres" > "$dir/url")
  cat "$dir/url"
}

stop() {
  local dir=$1 bin
  [[ -d "$dir" ]] || return 0
  bin=$(bindir) || die "PostgreSQL is not installed"
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_server "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null
  fi
  rm -rf "$dir"
}

command=${1:-}
case "$command" in
  check) bindir ;;
  start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; start "$2" ;;
  url) [[ $# -eq 2 && -f "$2/url" ]] || die "usage: $0 url DIR (a started server's folder)"; cat "$2/url" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 check | start DIR | url DIR | stop DIR" ;;
esac
