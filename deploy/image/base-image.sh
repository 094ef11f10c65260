#!/usr/bin/env bash
# base-image.sh - build a small Debian 12 base image locally, for hosts that cannot pull
# debian:bookworm-slim (no registry), and print its name.
#
#   usage: base-image.sh            (root, Debian 12 host, Docker engine running)
#
# mmdebstrap builds a minbase bookworm root file system with ca-certificates from the host's
# own apt sources; `docker import` turns it into an image. The hash of this file labels the
# image and names the cached tarball in $DEIS_BACKUP_BASE_CACHE: an image carrying the current
# hash is reused as is, a cached tarball skips mmdebstrap. A second run takes a second.
#
# Environment: DEIS_BACKUP_BASE_IMAGE (default deis-backup-base/bookworm:local),
# DEIS_BACKUP_BASE_CACHE (default /var/cache/deis-backup-testbed),
# DEIS_BACKUP_APT_SOURCES (default: the host's Debian sources file).
set -Eeuo pipefail

image=${DEIS_BACKUP_BASE_IMAGE:-deis-backup-base/bookworm:local}
cache=${DEIS_BACKUP_BASE_CACHE:-/var/cache/deis-backup-testbed}
label=deis-backup.base-recipe
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
tarball=$cache/deis-backup-base-$recipe.tar

log() { printf '[base-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

host_sources() {
    local f
    for f in "${DEIS_BACKUP_APT_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [[ -n $f && -s $f ]] && { echo "$f"; return; }
    done
    die "no apt sources file found; set DEIS_BACKUP_APT_SOURCES"
}

build_rootfs() {
    local sources tmp
    local -a aptopts=()
    sources=$(host_sources)
    grep -qw bookworm "$sources" || die "$sources does not name bookworm (Debian 12)"
    # mmdebstrap ignores the host's apt.conf.d: hand over proxy and snapshot-validity settings
    while IFS= read -r opt; do aptopts+=("--aptopt=$opt"); done < <(apt-config dump |
        grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date) ' || true)
    tmp=$(mktemp "$cache/.base-rootfs.XXXXXX")
    log "building the root file system from $sources (log $cache/base-mmdebstrap.log)"
    mmdebstrap --mode=root --variant=minbase --format=tar --quiet \
        --include=ca-certificates \
        --aptopt='Acquire::Languages "none"' "${aptopts[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$tmp" "$sources" >"$cache/base-mmdebstrap.log" 2>&1 || {
        rm -f "$tmp"
        tail -n 20 "$cache/base-mmdebstrap.log" >&2
        die "mmdebstrap failed"
    }
    mv -f "$tmp" "$tarball"
    find "$cache" -maxdepth 1 -name 'deis-backup-base-*.tar' ! -name "${tarball##*/}" -delete
}

import_image() {
    log "importing $tarball as $image"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=$recipe" \
        "$tarball" "$image" >/dev/null || die "docker import failed"
}

[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap --mode=root)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers"
mkdir -p "$cache"
exec 9>"$cache/.base.lock"
flock 9 # one build at a time per cache

if [[ $(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null) == "$recipe" ]]; then
    log "$image is current (recipe $recipe)"
else
    [[ -s $tarball ]] || build_rootfs
    import_image
fi
echo "$image"
