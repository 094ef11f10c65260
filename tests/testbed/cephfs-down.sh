#!/usr/bin/env bash
# cephfs-down.sh - unmount the CephFS of cephfs-up.sh in DIR and stop its ceph-fuse and
# ceph-mds (by their pid files only). Run it before rgw-down.sh: a FUSE mount whose
# cluster is gone blocks whoever touches it. Safe to run twice or when nothing runs.
#
#   usage: cephfs-down.sh DIR
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${1:?usage: cephfs-down.sh DIR}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd -P)
mount=$dir/mount
rc=0

# from /proc/self/mountinfo, not stat(): a FUSE mount whose daemon died answers stat() with
# "Transport endpoint is not connected" but is still there
mounted() { awk -v m="$mount" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# unmount first (a process still inside the mount would keep a plain unmount busy: lazy then)
if mounted; then
    tb_log "unmounting $mount"
    if [[ $(cat "$dir/mount.kind" 2>/dev/null) == kernel ]]; then
        timeout 20 umount "$mount" || timeout 20 umount -l "$mount" || rc=1
    else
        timeout 20 fusermount -u "$mount" || timeout 20 fusermount -uz "$mount" ||
            timeout 20 umount -l "$mount" || rc=1
    fi
fi
# ceph-fuse ends by itself once unmounted; tb_stop covers the case where it did not
tb_stop "$dir" fuse 10 || rc=1
if mounted; then
    tb_log "$mount is still mounted after ceph-fuse stopped: lazy unmount"
    timeout 20 umount -l "$mount" || rc=1
fi
# the cluster is thrown away next: no need to wait for the monitor to take the rank back
tb_stop "$dir" mds 2 || rc=1
exit $rc
