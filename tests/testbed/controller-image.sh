#!/usr/bin/env bash
# controller-image.sh - build the test bed's stand-in for Deis v1's deis-controller image on
# top of the deis-database stand-in (which carries python3), and print its name.
#
#   usage: controller-image.sh BASE_IMAGE        (Docker engine running; no network needed)
#
# The image is BASE_IMAGE plus controller/ in /app (Deis's WORKDIR for the controller):
# manage.py with `help`, `shell` and, when CONTROLLER_DEIS_VERSION >= 1.11 (the default),
# `load_db_state_to_etcd`; api/models.py with Key, App and Domain objects taken from
# CONTROLLER_STATE (JSON) whose save() writes their etcd keys over the v2 API to ETCD. Run
# it with `--network host -e ETCD=127.0.0.1:PORT`. See controller/manage.py.
#
# The recipe hash (this file, controller/ and the base image's id) labels the image: an
# image with the current hash is reused as is; otherwise `docker build` (a COPY, seconds).
#
# Environment: TESTBED_CONTROLLER_IMAGE (default deis-backup-testbed/deis-controller:1).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

base=${1:?usage: controller-image.sh BASE_IMAGE}
image=${TESTBED_CONTROLLER_IMAGE:-deis-backup-testbed/deis-controller:1}
label=deis-backup-testbed.recipe
base_id=$(docker image inspect -f '{{.Id}}' "$base") || tb_die "base image $base not found"
recipe=$({
    cat "$here/controller-image.sh"
    (cd "$here/controller" && find . -type f ! -path '*/__pycache__/*' -print0 | sort -z |
        xargs -0 sha256sum)
    echo "$base_id"
} | sha256sum | cut -c1-16)

if [[ $(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null) == "$recipe" ]]; then
    tb_log "$image is current (recipe $recipe)"
else
    tb_log "building $image on $base"
    log=$(mktemp)
    # the Dockerfile comes on stdin so that the context is controller/ alone
    if ! docker build -t "$image" --label "$label=$recipe" --build-arg "BASE=$base" \
        -f - "$here/controller" >"$log" 2>&1 <<'DOCKERFILE'; then
ARG BASE
FROM $BASE
COPY manage.py boot.py /app/
COPY api/__init__.py api/models.py /app/api/
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python3", "/app/boot.py"]
CMD []
DOCKERFILE
        cat "$log" >&2
        rm -f "$log"
        tb_die "docker build of $image failed"
    fi
    rm -f "$log"
    # images of older recipes lost their tag just now; drop those no container uses
    docker images -q --filter dangling=true --filter "label=$label" |
        xargs -r docker rmi >/dev/null 2>&1 || true
fi
echo "$image"
