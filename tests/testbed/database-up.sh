#!/usr/bin/env bash
# database-up.sh - run the test bed's deis-database container (PostgreSQL 15) and wait
# until postgres accepts connections. Builds the image first when needed (database-image.sh).
#
#   usage: database-up.sh DIR [NAME]        stop it again with: database-down.sh DIR
#
# NAME defaults to deis-database-test-<random>. The container id goes to DIR/container.id,
# DIR/env receives TESTBED_DB_CONTAINER, TESTBED_DB_IMAGE and TESTBED_DB_LABEL. Every
# container carrying the label `TESTBED_DB_LABEL` (tests add it to the restore targets
# they start) is removed by database-down.sh DIR.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=$(tb_use_dir "${1:?usage: database-up.sh DIR [NAME]}")
name=${2:-deis-database-test-$(tb_random_key 8 | tr A-F a-f)}
[[ ! -s $dir/container.id ]] || tb_die "$dir/container.id exists; run database-down.sh $dir first"

image=$("$here/database-image.sh")
label="deis-backup-testbed.dir=$dir"
# No port is published: tests reach postgres with `docker exec`, as the backup job does.
id=$(docker run -d --name "$name" --label "$label" "$image") ||
    tb_die "docker run $image failed"
echo "$id" >"$dir/container.id"
tb_log "started container $name (${id:0:12})"

ready() { docker exec -u postgres "$id" pg_isready -q; }
running() { [[ $(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null) == true ]]; }
start=$SECONDS
until ready 2>/dev/null; do
    if ! running || ((SECONDS - start >= 60)); then
        docker logs --tail 20 "$id" >&2 || true
        "$here/database-down.sh" "$dir" || true
        tb_die "postgres in $name did not become ready"
    fi
    sleep 0.2
done
tb_log "postgres in $name ready after $((SECONDS - start))s"

cat >"$dir/env" <<ENV
TESTBED_DB_CONTAINER=$name
TESTBED_DB_CONTAINER_ID=$id
TESTBED_DB_IMAGE=$image
TESTBED_DB_LABEL=$label
ENV
