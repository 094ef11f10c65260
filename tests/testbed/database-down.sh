#!/usr/bin/env bash
# database-down.sh - remove the container that database-up.sh started in DIR (by the id
# recorded in DIR/container.id) and every other container labelled for DIR (restore targets
# started by tests), with their anonymous volumes. Safe to run twice.
#
#   usage: database-down.sh DIR
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${1:?usage: database-down.sh DIR}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd -P)
ids=()
[[ -s $dir/container.id ]] && ids+=("$(<"$dir/container.id")")
mapfile -t -O "${#ids[@]}" ids < <(docker ps -aq --no-trunc --filter "label=deis-backup-testbed.dir=$dir")
for id in $(printf '%s\n' "${ids[@]}" | sort -u); do
    tb_log "removing container ${id:0:12} (its log goes to $dir/${id:0:12}.log)"
    docker logs "$id" >"$dir/${id:0:12}.log" 2>&1 || true
    out=$(docker rm -f -v "$id" 2>&1) || [[ $out == *"No such container"* ]] ||
        tb_die "could not remove container $id: $out"
done
rm -f "$dir/container.id"
