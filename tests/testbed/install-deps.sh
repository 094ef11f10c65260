#!/usr/bin/env bash
# install-deps.sh - install (as root, Debian 12) the Debian packages that the test bed, CI
# and the benchmarks need. Idempotent: packages already present are left alone, and
# `apt-get update` runs only when something is missing. Never prompts.
#
#   usage: install-deps.sh
#
# The Docker engine itself is expected to be there already (it is on our machines);
# this script only checks that it answers.
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

packages=(
    protobuf-compiler libprotobuf-dev                  # etcd-client's build script (protoc + well-known types)
    etcd-server etcd-client                            # etcd 3.4, v2 + v3 APIs
    ceph-mon ceph-osd ceph-mgr radosgw ceph-common     # the store-gateway stand-in
    ceph-mds ceph-fuse                                 # CephFS, the store-volume stand-in
    curl uuid-runtime iproute2 jq                      # test bed plumbing
    mmdebstrap                                         # deis-database and deis-backup base images
    systemd                                            # systemd-analyze verify of the fleet unit
    s3cmd rclone zstd time python3                     # benchmark peers and tools
    prometheus                                         # promtool for the alert rule tests
)

missing=()
for pkg in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || tb_die "missing packages (${missing[*]}) and not root"
    export DEBIAN_FRONTEND=noninteractive
    # keep packaged services (etcd, prometheus) from starting on install: we run our own
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    tb_log "installing: ${missing[*]}"
    apt-get -q update
    apt-get -q install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
else
    tb_log "all ${#packages[@]} packages already installed"
fi

docker info >/dev/null 2>&1 || tb_log "WARNING: no Docker engine answers; the database tests will fail"
