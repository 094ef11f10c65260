#!/usr/bin/env bash
# gateway-scale.sh - the gateway job on a bucket of many small objects, against
# `rclone sync --transfers 16`, at two sizes, to show how time and memory grow.
#
#   usage: bench/gateway-scale.sh [WORK_DIR]   (default bench/work/gateway-scale, gitignored)
#   env:   OBJECTS=200000  objects in the bucket at the large size
#          FIRST=20000     objects at the first size (0: skip it)
#          CONCURRENCY=16  the gateway job's concurrency
#          TESTBED_S3_ENDPOINT, TESTBED_GATEWAY_ACCESS_KEY, TESTBED_GATEWAY_SECRET_KEY: use
#          that radosgw; unset: bring one up under WORK_DIR/rgw and tear it down at exit
#
# Seeds bucket bench_scale with FIRST objects of 100 B to 8 KiB (registry-like keys, written
# in parallel by rclone from a generated folder), then times, each into an empty local folder
# and again with nothing changed:
#   ours:      target/release/deis-backup backup gateway   (local destination)
#   rclone16:  rclone sync --transfers 16 gw:bench_scale DIR
# then tops the bucket up to OBJECTS and times the same four runs again. Prints wall times,
# ratios, our peak RSS at each size, and the targets of issue 11 (full <= rclone, no-change
# <= 0.05x rclone, peak RSS <= 128 MiB).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
work=$(mkdir -p "${1:-bench/work/gateway-scale}" && cd "${1:-bench/work/gateway-scale}" && pwd)
objects=${OBJECTS:-200000}
first=${FIRST:-20000}
concurrency=${CONCURRENCY:-16}
bucket=bench_scale
BENCH=gateway-scale
# shellcheck source=bench/lib-gateway.sh
. bench/lib-gateway.sh

for tool in python3 s3cmd rclone /usr/bin/time cargo; do
    command -v "$tool" >/dev/null || die "$tool missing (run tests/testbed/install-deps.sh)"
done
[[ $objects =~ ^[0-9]+$ && $first =~ ^[0-9]+$ && $first -le $objects ]] ||
    die "OBJECTS and FIRST must be integers with FIRST <= OBJECTS"
trap gw_down EXIT
TESTBED_OSD_GB=${TESTBED_OSD_GB:-10} gw_up "$work"

# count: objects in the bucket now
count() {
    rclone_ size --json "gw:$bucket" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0
}

# grow_to N: adds objects FROM..N-1 (their keys are numbered, so a rerun tops up)
grow_to() {
    local want=$1 have
    have=$(count)
    ((have < want)) || return 0
    local src=$work/seed
    rm -rf "$src"
    say "generating objects $have..$((want - 1)) in $src"
    python3 - "$src" "$have" "$want" <<'PY'
import os, random, sys
root, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(start)
for i in range(start, end):
    digest = '%064x' % random.Random(i).getrandbits(256)
    kind = i % 3
    if kind == 0:
        path = f'docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data'
    elif kind == 1:
        path = f'docker/registry/v2/repositories/app{i % 97}/_layers/sha256/{digest}/link'
    else:
        path = f'wal_005/{i:024X}.lzo'
    p = os.path.join(root, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, 'wb') as f:
        f.write(rng.randbytes(rng.randint(100, 8 << 10)))
PY
    s3cmd -c "$s3cfg" mb "s3://$bucket" >/dev/null 2>&1 || true
    say "uploading $((want - have)) objects into $bucket (rclone --transfers 64)"
    rclone_ copy --transfers 64 --checkers 64 --s3-no-check-bucket "$src" "gw:$bucket"
    rm -rf "$src"
    have=$(count)
    ((have >= want)) || die "the bucket holds $have objects after seeding, wanted $want"
}

say "building the release binary"
cargo build --release --quiet

ours() {
    DEIS_BACKUP_GATEWAY__ENDPOINT=$endpoint DEIS_BACKUP_GATEWAY__ACCESS_KEY=$access \
        DEIS_BACKUP_GATEWAY__SECRET_KEY=$secret DEIS_BACKUP_GATEWAY__BUCKETS=$bucket \
        DEIS_BACKUP_GATEWAY__CONCURRENCY=$concurrency DEIS_BACKUP_DESTINATION__URL="file://$dest/ours" \
        "$repo/target/release/deis-backup" backup gateway
}
rclone16() { rclone_ sync --transfers 16 --checkers 16 "gw:$bucket" "$dest/rclone"; }
export -f ours rclone16
export bucket concurrency repo

results=$work/results.txt
: >"$results"
sizes=()
((first > 0)) && sizes+=("$first")
sizes+=("$objects")
for n in "${sizes[@]}"; do
    grow_to "$n"
    export dest=$work/dest-$n
    rm -rf "$dest"
    run "ours-full-$n" bash -c ours
    run "ours-nochange-$n" bash -c ours
    run "rclone16-full-$n" bash -c rclone16
    run "rclone16-nochange-$n" bash -c rclone16
    rm -rf "$dest"
done

python3 - "$results" "${sizes[@]}" <<'PY'
import sys
rows = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1])}
sizes = sys.argv[2:]
print()
print(f"{'objects':>8} {'run':<10}{'ours s':>9}{'rclone16 s':>12}{'ratio':>8}{'our RSS MiB':>13}")
for n in sizes:
    for run in ('full', 'nochange'):
        ours, rclone = rows[f'ours-{run}-{n}'], rows[f'rclone16-{run}-{n}']
        print(f"{n:>8} {run:<10}{ours[0]:>9.2f}{rclone[0]:>12.2f}{ours[0] / rclone[0]:>7.3f}x{ours[1] / 1024:>13.0f}")
n = sizes[-1]
full = rows[f'ours-full-{n}'][0] / rows[f'rclone16-full-{n}'][0]
nochange = rows[f'ours-nochange-{n}'][0] / rows[f'rclone16-nochange-{n}'][0]
rss = max(rows[f'ours-{r}-{n}'][1] for r in ('full', 'nochange')) / 1024
print(f"\ntargets at {n} objects: full <= 1.0x rclone16 ({full:.2f}x), "
      f"no-change <= 0.05x ({nochange:.3f}x), peak RSS <= 128 MiB ({rss:.0f} MiB)")
if len(sizes) > 1:
    small = max(rows[f'ours-{r}-{sizes[0]}'][1] for r in ('full', 'nochange')) / 1024
    print(f"our peak RSS grows from {small:.0f} MiB at {sizes[0]} objects to {rss:.0f} MiB at {n}")
PY
