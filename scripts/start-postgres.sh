#!/usr/bin/env bash
# Starts a private PostgreSQL cluster on 127.0.0.1 (a free port, a temp dir, owned by the
# `postgres` user) and exports SGWALL_TEST_PG_URL for the store/API tests.
# Usage: `source scripts/start-postgres.sh` (sets the variable in the caller's shell) or
# `bash scripts/start-postgres.sh` (prints `export SGWALL_TEST_PG_URL=...`).
# Stop with: `pg_ctl -D "$SGWALL_TEST_PG_DIR" stop` (run as postgres), or just delete the dir.
_sgwall_saved_opts=$(set +o)
case $- in *e*) _sgwall_saved_opts+=$'\nset -e' ;; *) _sgwall_saved_opts+=$'\nset +e' ;; esac
set -euo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if [ -z "$pgbin" ]; then echo "start-postgres: Debian postgresql is not installed" >&2; return 1 2>/dev/null || exit 1; fi
dir=$(mktemp -d /tmp/sgwall-pg.XXXXXX)
chown postgres:postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
run "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
run "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
run "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres sgwall
export SGWALL_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/sgwall"
export SGWALL_TEST_PG_DIR="$dir/data"
echo "start-postgres: PostgreSQL ready at $SGWALL_TEST_PG_URL (data $dir/data)" >&2
echo "export SGWALL_TEST_PG_URL=$SGWALL_TEST_PG_URL"
eval "$_sgwall_saved_opts"
unset _sgwall_saved_opts
