#!/bin/sh
# Debian's PostgreSQL as the container's process. On an empty $PGDATA it creates the cluster with
# superuser POSTGRES_USER (postgres) / POSTGRES_PASSWORD and the database POSTGRES_DB (= user).
# PGPORT (5432) is read by the server and by pg_isready alike; listeners bind
# POSTGRES_LISTEN_ADDRESS (127.0.0.1: this image is meant for host networking). Local socket
# connections are trusted, TCP ones need the password (scram-sha-256).
set -eu
bin=/usr/lib/postgresql/bin
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  chown postgres "$pwfile"
  as_postgres "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  if [ "$database" != postgres ]; then
    as_postgres "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres "$bin/psql" -v ON_ERROR_STOP=1 -U "$user" -d postgres -q \
      -c "CREATE DATABASE \"$database\""
    as_postgres "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" \
  -c listen_addresses="${POSTGRES_LISTEN_ADDRESS:-127.0.0.1}" -p "${PGPORT:-5432}"
