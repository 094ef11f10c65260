#!/usr/bin/env bash
# down.sh - tear down everything up.sh started in DIR (each daemon by its pid file, each
# container by its id). Safe when the bed is only partly up, or already down.
#
#   usage: down.sh DIR [--purge]     --purge also deletes DIR once everything is stopped
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=${1:?usage: down.sh DIR [--purge]}
[[ -d $dir ]] || { tb_log "$dir does not exist: nothing to stop"; exit 0; }
dir=$(cd "$dir" && pwd -P)

# parts of one line stop one after the other: the CephFS mount before its cluster (a FUSE
# mount whose cluster is gone hangs whoever touches it); lines side by side
declare -A job
for line in database "cephfs rgw" etcd; do
    (
        rc=0
        for part in $line; do "$here/$part-down.sh" "$dir/$part" || rc=1; done
        exit $rc
    ) &
    job[$line]=$!
done
failed=()
for line in "${!job[@]}"; do
    wait "${job[$line]}" || failed+=("$line")
done
((${#failed[@]} == 0)) || tb_die "could not stop: ${failed[*]} (see above)"
rm -f "$dir/env.sh"
if [[ ${2:-} == --purge ]]; then
    rm -rf --one-file-system "$dir"
    tb_log "stopped and removed $dir"
else
    tb_log "stopped; logs stay in $dir"
fi
