#!/usr/bin/env bash
# rgw-down.sh - stop the Ceph daemons that rgw-up.sh started in DIR, newest first
# (radosgw, mgr, OSD, monitor), each by its pid file only. Safe to run twice.
#
#   usage: rgw-down.sh DIR
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${1:?usage: rgw-down.sh DIR}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd -P)
rc=0
for daemon in rgw mgr osd mon; do
    tb_stop "$dir" "$daemon" 15 || rc=1
done
exit $rc
