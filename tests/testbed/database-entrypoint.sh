#!/bin/bash
# database-entrypoint.sh - PID 1 of the test bed's deis-database image (baked in by
# database-image.sh as /usr/local/bin/deis-database-entrypoint).
#
#   no argument / "postgres [ARGS]"  create cluster 15/main on the first start (superuser
#                                    password from $POSTGRES_PASSWORD; with
#                                    $DEIS_DATABASE_USER, $DEIS_DATABASE_PASSWORD and
#                                    $DEIS_DATABASE_NAME also that role and its empty
#                                    database, as Deis's deis-database does on a first
#                                    boot without WAL-E backups), then run postgres in the
#                                    foreground with ARGS
#   anything else                    exec'd as given (e.g. `docker run -it IMAGE bash`)
#
# This script stays PID 1 instead of exec'ing postgres: bash reaps the orphans that
# `docker exec` leaves behind (as postgres's child, an unknown process dying would set off
# crash recovery), and it turns `docker stop`'s SIGTERM into SIGINT, postgres's fast
# shutdown (Docker 20.10's `docker import` cannot set a STOPSIGNAL).
set -Eeuo pipefail

if [[ $# -gt 0 && $1 != postgres ]]; then exec "$@"; fi
[[ $# -gt 0 ]] && shift

version=15
data=/var/lib/postgresql/$version/main
conf=/etc/postgresql/$version/main
export LANG=${LANG:-C.UTF-8}

say() { echo "deis-database-entrypoint: $*" >&2; }

init_cluster() {
    local pwfile
    say "first start: creating cluster $version/main"
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-changeme123}" >"$pwfile"
    chown postgres "$pwfile"
    rm -rf "$conf"
    pg_createcluster --locale=C.UTF-8 --encoding=UTF8 --port=5432 "$version" main -- \
        --auth-local=peer --auth-host=scram-sha-256 --pwfile="$pwfile" >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >"$conf/conf.d/50-listen-everywhere.conf"
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$conf/pg_hba.conf"
    chown -R postgres:postgres "$conf"
    [[ -z ${DEIS_DATABASE_USER:-} ]] || create_deis_database
}

# what Deis's deis-database boot script does on a new cluster: the platform's role and its
# (empty) database, made in single-user mode before the server accepts connections
create_deis_database() {
    local user=$DEIS_DATABASE_USER name=${DEIS_DATABASE_NAME:-$DEIS_DATABASE_USER}
    local password=${DEIS_DATABASE_PASSWORD:-changeme123}
    say "first start: creating role $user and database $name"
    single() {
        setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "/usr/lib/postgresql/$version/bin/postgres" --single -D "$data" \
            -c config_file="$conf/postgresql.conf" postgres >/dev/null
    }
    local q="'"
    printf 'CREATE ROLE "%s" LOGIN PASSWORD %s;\n' "$user" "$q${password//$q/$q$q}$q" | single
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$name" "$user" | single
}

# the socket directory lives in /run, which starts empty in every container
install -d -o postgres -g postgres -m 2775 /run/postgresql
[[ -s $data/PG_VERSION ]] || init_cluster

server=
# shellcheck disable=SC2317 # called from the traps below
relay() { [[ -z $server ]] || kill "-$1" "$server" 2>/dev/null || true; }
trap 'relay INT' TERM INT
trap 'relay QUIT' QUIT
trap 'relay HUP' HUP

# setpriv (not a shell function, which would fork a subshell) so that $! is postgres itself
setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "/usr/lib/postgresql/$version/bin/postgres" -D "$data" -c config_file="$conf/postgresql.conf" "$@" &
server=$!
say "postgres $version running as pid $server"

# `wait` also returns when a trapped signal arrives: keep waiting while postgres lives.
status=0
while :; do
    wait "$server" || status=$?
    kill -0 "$server" 2>/dev/null || break
    status=0
done
if ((status > 128)); then
    # the last wait may have been cut short by a signal; ask once more for the exit code
    again=0
    wait "$server" 2>/dev/null || again=$?
    ((again == 127)) || status=$again
fi
say "postgres exited with status $status"
exit "$status"
