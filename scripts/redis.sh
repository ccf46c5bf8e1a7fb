#!/usr/bin/env bash
# A throwaway Redis server (Celery's broker for the distributed tests), from Debian's redis-server package, in a
# directory of its own.
#
#   scripts/redis.sh check        exit 0 when redis-server and redis-cli are installed (prints the version)
#   scripts/redis.sh start DIR    start on 127.0.0.1 at a free port with its files in DIR, print the broker URL
#   scripts/redis.sh url DIR      print the URL of the server in DIR again
#   scripts/redis.sh stop DIR     stop the server in DIR and delete DIR
#
# The server listens on 127.0.0.1 only and asks for a random password; nothing is saved to disk (no RDB
# snapshots, no append-only file): the broker's messages are thrown away with DIR.
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

check() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || return 1
  redis-server --version
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# redis-cli against the server in DIR (the password from the environment: not on the command line).
cli() {
  local dir=$1
  shift
  REDISCLI_AUTH=$(cat "$dir/password") redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" "$@"
}

start() {
  local dir=$1 port password
  check >/dev/null || die "redis-server is not installed (apt-get install -y redis-server)"
  mkdir -p "$dir"
  [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd)
  port=$(free_port)
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  (umask 077; echo "$password" > "$dir/password"; echo "$port" > "$dir/port")
  # The configuration goes on stdin ("-"), so the password is not in the arguments that `ps` shows.
  printf '%s\n' "bind 127.0.0.1" "port $port" "dir $dir" "daemonize yes" "pidfile $dir/redis.pid" \
    "logfile $dir/redis.log" "requirepass $password" 'save ""' "appendonly no" \
    | redis-server - >"$dir/start.log" || die "redis-server did not start (see $dir/redis.log)"
  for _ in $(seq 1 100); do
    if [[ "$(cli "$dir" ping 2>/dev/null)" == "PONG" ]]; then
      (umask 077; echo "redis://:$password@127.0.0.1:$port/0" > "$dir/url")
      cat "$dir/url"
      return 0
    fi
    sleep 0.1
  done
  cat "$dir/redis.log" >&2 || true
  die "the server did not answer within 10 s"
}

stop() {
  local dir=$1 pid
  [[ -d "$dir" ]] || return 0
  if [[ -f "$dir/redis.pid" ]]; then
    pid=$(cat "$dir/redis.pid")
    cli "$dir" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

command=${1:-}
case "$command" in
  check) check ;;
  start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; start "$2" ;;
  url) [[ $# -eq 2 && -f "$2/url" ]] || die "usage: $0 url DIR (a started server's folder)"; cat "$2/url" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 check | start DIR | url DIR | stop DIR" ;;
esac
