#!/usr/bin/env bash
# cephfs-up.sh - a CephFS file system on the one-node cluster of rgw-up.sh (what the Deis
# store-volume is), mounted with ceph-fuse at DIR/mount.
#
#   usage: cephfs-up.sh DIR CEPH_DIR     CEPH_DIR: the running rgw-up.sh directory
#          stop it again with: cephfs-down.sh DIR (before rgw-down.sh CEPH_DIR)
#
# Makes the pools cephfs_data and cephfs_metadata, `ceph fs new deisfs`, starts one ceph-mds
# (mds.a) and mounts the file system with `ceph-fuse -f` as client.fuse (`ceph fs authorize
# ... rwps`; both keys in DIR/keyring), run by root so that root may chown and chmod there
# as on the Deis hosts. Both processes are known by their pid files (DIR/mds.pid, fuse.pid).
# DIR/env receives TESTBED_CEPHFS_MOUNT.
#
# The kernel client (mount -t ceph) is used instead when TESTBED_CEPHFS_KERNEL=1 and this
# kernel knows the ceph file system (/proc/filesystems); the test machines' kernel is built
# without CONFIG_CEPH_FS and without module support, so ceph-fuse is the default.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=$(tb_use_dir "${1:?usage: cephfs-up.sh DIR CEPH_DIR}")
ceph_dir=$(cd "${2:?usage: cephfs-up.sh DIR CEPH_DIR}" && pwd -P)
conf=$ceph_dir/ceph.conf
mount=$dir/mount
kernel=${TESTBED_CEPHFS_KERNEL:-0}
for tool in ceph ceph-mds ceph-fuse mountpoint; do
    command -v "$tool" >/dev/null || tb_die "$tool not found (run tests/testbed/install-deps.sh)"
done
[[ -f $conf ]] || tb_die "$conf missing: bring the cluster up with rgw-up.sh $ceph_dir first"
[[ -c /dev/fuse ]] || tb_die "/dev/fuse is missing: ceph-fuse cannot mount here"
if [[ $kernel == 1 ]] && ! grep -qw ceph /proc/filesystems; then
    tb_die "TESTBED_CEPHFS_KERNEL=1 but this kernel has no ceph file system (/proc/filesystems)"
fi

# a mount left behind by an earlier run would hide the new one
mountpoint -q "$mount" 2>/dev/null && tb_die "$mount is still mounted; run cephfs-down.sh $dir first"
rm -rf "$dir"/{mds,env,keyring,*.log}
mkdir -p "$dir/mds/a" "$mount"

# A failed bring-up leaves nothing running or mounted behind.
trap 'rc=$?; ((rc == 0)) || "$here/cephfs-down.sh" "$dir" >&2 || true' EXIT

cephc() { timeout 20 ceph -c "$conf" --connect-timeout 5 "$@"; }
# the MDS map names an active rank for the file system
mds_is_active() { cephc fs dump -f json 2>/dev/null | grep -q '"state": *"up:active"'; }

cephc osd pool create cephfs_metadata 8 >/dev/null
cephc osd pool create cephfs_data 8 >/dev/null
cephc fs new deisfs cephfs_metadata cephfs_data >/dev/null
cephc auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow *' \
    mgr 'allow profile mds' >"$dir/keyring"
# the mount's own client: read, write, layouts and snapshots on the whole file system
cephc fs authorize deisfs client.fuse / rwps >>"$dir/keyring"
chmod 600 "$dir/keyring"

tb_spawn "$dir" mds ceph-mds -c "$conf" -i a -f --keyring "$dir/keyring" \
    --mds-data "$dir/mds/a" --log-file "$dir/mds.a.log"
tb_wait 60 "MDS a active for deisfs" "$dir" mds mds_is_active

if [[ $kernel == 1 ]]; then
    mon=$(sed -n 's/^mon_host = v2://p' "$conf")
    secret=$(cephc auth get-key client.fuse)
    mount -t ceph "$mon:/" "$mount" -o "name=fuse,secret=$secret,ms_mode=crc" ||
        tb_die "mount -t ceph $mon:/ $mount failed"
    echo kernel >"$dir/mount.kind"
else
    # -f: stays in the foreground, so its pid is the mount's; it unmounts when stopped.
    # fuse_default_permissions off: ceph-fuse checks permissions itself (client_permissions),
    # so root may chown and owners/modes behave as on a local disk.
    tb_spawn "$dir" fuse ceph-fuse -f -c "$conf" -n client.fuse --keyring "$dir/keyring" --client-fs deisfs \
        --log-file "$dir/client.fuse.log" "$mount"
    tb_wait 30 "ceph-fuse mount at $mount" "$dir" fuse mountpoint -q "$mount"
    echo fuse >"$dir/mount.kind"
fi

cat >"$dir/env" <<ENV
TESTBED_CEPHFS_MOUNT=$mount
ENV
tb_log "CephFS deisfs mounted at $mount ($(<"$dir/mount.kind"))"
