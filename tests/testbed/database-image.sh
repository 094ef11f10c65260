#!/usr/bin/env bash
# database-image.sh - build the local stand-in for Deis v1's deis-database image
# (PostgreSQL 15 + sudo + python3 with its whole standard library, as the real image carries
# it for WAL-E, on Debian 12) without any registry, and print its name. The controller
# stand-in (controller-image.sh) builds on it and needs that library (code, json, urllib).
#
#   usage: database-image.sh            (root, Debian 12 host, Docker engine running)
#
# mmdebstrap builds the root file system from the host's own apt sources, with
# database-entrypoint.sh as the entrypoint; `docker import` turns it into an image.
# The recipe hash (this file + the entrypoint) labels the image and names the cached
# tarball in $TESTBED_CACHE (default /var/cache/deis-backup-testbed): an image with the
# current hash is reused as is; a cached tarball skips mmdebstrap.
#
# Environment: TESTBED_DB_IMAGE (default deis-backup-testbed/deis-database:15),
# TESTBED_CACHE, TESTBED_APT_SOURCES (default: the host's Debian sources file).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

image=${TESTBED_DB_IMAGE:-deis-backup-testbed/deis-database:15}
cache=${TESTBED_CACHE:-/var/cache/deis-backup-testbed}
label=deis-backup-testbed.recipe
recipe=$(cat "$here/database-image.sh" "$here/database-entrypoint.sh" | sha256sum | cut -c1-16)
tarball=$cache/deis-database-$recipe.tar

host_sources() {
    local f
    for f in "${TESTBED_APT_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [[ -n $f && -s $f ]] && { echo "$f"; return; }
    done
    tb_die "no apt sources file found; set TESTBED_APT_SOURCES"
}

build_rootfs() {
    local sources tmp
    local -a aptopts=()
    sources=$(host_sources)
    grep -qw bookworm "$sources" || tb_die "$sources does not name bookworm (Debian 12)"
    # mmdebstrap ignores the host's apt.conf.d: hand over proxy and snapshot-validity settings
    while IFS= read -r opt; do aptopts+=("--aptopt=$opt"); done < <(apt-config dump |
        grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date) ' || true)
    tmp=$(mktemp "$cache/.rootfs.XXXXXX")
    TB_LOGS+=("$cache/mmdebstrap.log")
    tb_log "building the root file system from $sources (log $cache/mmdebstrap.log)"
    # shellcheck disable=SC2016 # "$1" is expanded by mmdebstrap's hook shell
    mmdebstrap --mode=root --variant=apt --format=tar --quiet \
        --include=postgresql-15,sudo,procps,python3 \
        --aptopt='Acquire::Languages "none"' "${aptopts[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='chroot "$1" pg_dropcluster 15 main 2>/dev/null || true' \
        --customize-hook="install -m 0755 '$here/database-entrypoint.sh' \"\$1/usr/local/bin/deis-database-entrypoint\"" \
        --customize-hook='rm -f "$1/etc/resolv.conf"; echo deis-database >"$1/etc/hostname"' \
        bookworm "$tmp" "$sources" >"$cache/mmdebstrap.log" 2>&1 ||
        { rm -f "$tmp"; tb_die "mmdebstrap failed"; }
    mv -f "$tmp" "$tarball"
    find "$cache" -maxdepth 1 -name 'deis-database-*.tar' ! -name "${tarball##*/}" -delete
}

import_image() {
    tb_log "importing $tarball as $image"
    docker import \
        --change 'ENTRYPOINT ["/usr/local/bin/deis-database-entrypoint"]' \
        --change 'CMD ["postgres"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
        --change 'EXPOSE 5432/tcp' \
        --change "LABEL $label=$recipe" \
        "$tarball" "$image" >/dev/null || tb_die "docker import failed"
    # images of older recipes lost their tag just now; drop those no container uses
    docker images -q --filter dangling=true --filter "label=$label" |
        xargs -r docker rmi >/dev/null 2>&1 || true
}

[[ $(id -u) == 0 ]] || tb_die "run as root (mmdebstrap --mode=root)"
docker info >/dev/null 2>&1 || tb_die "no Docker engine answers"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one build at a time per cache

if [[ $(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null) == "$recipe" ]]; then
    tb_log "$image is current (recipe $recipe)"
else
    [[ -s $tarball ]] || build_rootfs
    import_image
fi
echo "$image"
