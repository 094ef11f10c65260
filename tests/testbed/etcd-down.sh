#!/usr/bin/env bash
# etcd-down.sh - stop the etcd that etcd-up.sh started in DIR (by its pid file only).
# Safe to run twice or when nothing runs.
#
#   usage: etcd-down.sh DIR
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${1:?usage: etcd-down.sh DIR}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd -P)
tb_stop "$dir" etcd 10
