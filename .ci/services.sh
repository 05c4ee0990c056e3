#!/usr/bin/env bash
# Start PostgreSQL and Redis (Debian packages) on loopback, data under /tmp, for the tests that need
# real servers; export MAAS_TEST_DATABASE_URL and MAAS_TEST_REDIS_URL. Sourced by .ci/run.
# Without these variables those tests skip, so `make test` alone still passes.
set -euo pipefail

MAAS_CI_PG_PORT=${MAAS_CI_PG_PORT:-55432}
MAAS_CI_REDIS_PORT=${MAAS_CI_REDIS_PORT:-56379}

if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
    fi
fi

PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
PG_DATA=$(mktemp -d /tmp/maas-ci-pg.XXXXXX)
# PostgreSQL refuses to run as root: run it as the `postgres` user the Debian package creates.
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$PG_DATA"
as_pg "$PG_BIN/initdb -D $PG_DATA -U maas --auth=trust >/dev/null"
as_pg "$PG_BIN/pg_ctl -D $PG_DATA -o '-c listen_addresses=127.0.0.1 -p $MAAS_CI_PG_PORT -k $PG_DATA' -l $PG_DATA/log -w start >/dev/null"
as_pg "$PG_BIN/createdb -h 127.0.0.1 -p $MAAS_CI_PG_PORT -U maas maas_test"
export MAAS_TEST_DATABASE_URL="postgresql+psycopg://maas@127.0.0.1:$MAAS_CI_PG_PORT/maas_test"

REDIS_DIR=$(mktemp -d /tmp/maas-ci-redis.XXXXXX)
redis-server --bind 127.0.0.1 --port "$MAAS_CI_REDIS_PORT" --dir "$REDIS_DIR" --save '' --appendonly no \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/log"
for _ in $(seq 50); do redis-cli -p "$MAAS_CI_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export MAAS_TEST_REDIS_URL="redis://127.0.0.1:$MAAS_CI_REDIS_PORT/0"

maas_ci_stop_services() {
    as_pg "$PG_BIN/pg_ctl -D $PG_DATA -m fast stop >/dev/null" || true
    redis-cli -p "$MAAS_CI_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$PG_DATA" "$REDIS_DIR"
}
echo "services: PostgreSQL on 127.0.0.1:$MAAS_CI_PG_PORT, Redis on 127.0.0.1:$MAAS_CI_REDIS_PORT" >&2
