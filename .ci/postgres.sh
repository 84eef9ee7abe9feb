#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests, from the distribution's binaries.
#   .ci/postgres.sh start DIR   initdb + start on a free loopback port; prints the postgresql:// URL
#   .ci/postgres.sh stop DIR    stop it and remove DIR
# As root (CI) the server runs as `nobody`: PostgreSQL refuses to run as root.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a folder for the cluster}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] && command -v pg_ctl >/dev/null; then bin=$(dirname "$(command -v pg_ctl)"); fi
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: no PostgreSQL server binaries; install them with: apt-get install -y postgresql" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown nobody "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U genresult --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
    # fsync off: the data is thrown away at the end, and the tests should not wait for a disk.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    echo "postgresql://genresult@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "postgres.sh: start or stop, not $action" >&2
    exit 2
    ;;
esac
