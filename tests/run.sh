#!/usr/bin/env bash
# run.sh - the project's test command: installs what the test bed needs, brings the real
# services up (etcd, Ceph radosgw, the deis-database container) in a fresh directory,
# runs `cargo test --all-targets` against them, and always tears the test bed down.
#
#   usage: bash tests/run.sh [CARGO TEST ARGS...]     (root, Debian 12, Docker engine)
#   e.g.   bash tests/run.sh --test testbed_smoke      (a target flag replaces --all-targets)
#          bash tests/run.sh etcd                      (a name filter keeps all targets)
#
# Exits with cargo's status. On failure the test bed's logs are kept and their place printed.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
testbed=tests/testbed

bash "$testbed/install-deps.sh"
bed=$(mktemp -d "${TMPDIR:-/tmp}/deis-backup-testbed.XXXXXX")
status=1

finish() {
    bash "$testbed/down.sh" "$bed" || status=1
    if ((status == 0)); then
        rm -rf --one-file-system "$bed"
    else
        echo "run.sh: FAILED (status $status). Test bed logs: $bed/*.up.log, $bed/etcd/etcd.log," \
            "$bed/rgw/*.log, $bed/cephfs/*.log, $bed/database/*.log" >&2
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

bash "$testbed/up.sh" "$bed"
# the tests configure the product themselves: no stray product settings from this shell
for var in ETCD $(compgen -v DEIS_BACKUP_ || true); do unset "$var"; done
# shellcheck source=/dev/null
. "$bed/env.sh"

targets=(--all-targets)
for arg in "$@"; do
    case $arg in --lib | --bin* | --test* | --example* | --bench* | --doc) targets=() ;; esac
done

status=0
cargo test "${targets[@]}" "$@" || status=$?
