#!/usr/bin/env bash
# The services image: redis | postgres | health (the HEALTHCHECK of either).
# Both run as their Debian system user; passwords come from the environment (an env
# file), never from the image.
set -euo pipefail
role="${1:-redis}"
[ $# -gt 0 ] && shift

case "$role" in
  redis)
    : "${REDIS_PASSWORD:?REDIS_PASSWORD is not set: copy deploy/.env.example to deploy/.env and set it}"
    # GCS state only: kept in memory (no dump, no AOF), as Ray's GCS fault tolerance needs.
    exec setpriv --reuid=redis --regid=redis --init-groups \
      redis-server --bind 0.0.0.0 --port 6379 --protected-mode no --save "" \
      --appendonly no --dir /data/redis --requirepass "$REDIS_PASSWORD" "$@"
    ;;
  postgres)
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set: copy deploy/.env.example to deploy/.env and set it}"
    user="${POSTGRES_USER:-fleetlearn}" db="${POSTGRES_DB:-fleetlearn}"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      pwfile="$(mktemp)"; printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
      chown postgres "$pwfile"
      setpriv --reuid=postgres --regid=postgres --init-groups \
        initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 >/dev/null
      rm -f "$pwfile"
      echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
      setpriv --reuid=postgres --regid=postgres --init-groups \
        postgres --single -D "$PGDATA" -c listen_addresses='' template1 \
        <<< "CREATE DATABASE \"$db\" OWNER \"$user\";" >/dev/null
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups \
      postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
    ;;
  health)
    if [ -d "$PGDATA" ] && [ -s "$PGDATA/PG_VERSION" ]; then
      exec pg_isready -q -h 127.0.0.1 -U "${POSTGRES_USER:-fleetlearn}"
    fi
    exec redis-cli -a "${REDIS_PASSWORD:-}" --no-auth-warning ping
    ;;
  *) exec "$role" "$@" ;;
esac
