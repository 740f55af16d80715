#!/bin/sh
# The official image's contract, in short: as root, own the data folder and drop to postgres;
# on a first start (no PG_VERSION), initdb with POSTGRES_USER/POSTGRES_PASSWORD (or the file
# POSTGRES_PASSWORD_FILE names: compose's secrets), allow password logins from anywhere, and
# create POSTGRES_DB.
set -eu
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        # As the official image: one or the other.
        if [ -n "${POSTGRES_PASSWORD:-}" ]; then
            echo "docker-entrypoint: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)" >&2
            exit 1
        fi
        POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
    fi
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set}"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
        createdb -U "$user" "$db"
        pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    fi
    echo "docker-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
