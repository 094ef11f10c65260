#!/usr/bin/env bash
# gateway.sh - benchmark the gateway job against the documented procedure (s3cmd sync) and
# rclone, reading the same buckets from a real Ceph radosgw.
#
#   usage: bench/gateway.sh [WORK_DIR]        (default bench/work/gateway, gitignored)
#   env:   TESTBED_S3_ENDPOINT, TESTBED_GATEWAY_ACCESS_KEY, TESTBED_GATEWAY_SECRET_KEY: use
#          that radosgw; unset: bring one up under WORK_DIR/rgw (bluestore) and tear it down
#          CONCURRENCY=16  the gateway job's concurrency
#
# Seeds (once; kept while the radosgw lives) about 2,000 objects, ~1.1 GiB, 4 KiB to 32 MiB,
# into buckets bench_db_wal (WAL-E layout: basebackups_005/..., wal_005/...) and
# bench_registry (registry layout: docker/registry/v2/...). Then times under /usr/bin/time -v,
# each into an empty local folder, then again with nothing changed:
#   ours:       target/release/deis-backup backup gateway   (local destination)
#   s3cmd:      s3cmd sync s3://BUCKET DIR/                 (the Deis documented procedure)
#   rclone:     rclone sync gw:BUCKET DIR                   (defaults: 4 transfers)
#   rclone16:   rclone sync --transfers 16 gw:BUCKET DIR
# and prints wall times, the ratios to ours, and our peak RSS.
#
# Then (RESTORE=1) puts the same objects back, each run onto freshly emptied buckets
# (radosgw-admin bucket rm --purge-objects --bypass-gc, or rclone purge without a ceph.conf,
# then an empty bucket made again), RESTORE_ROUNDS times in turn, and prints the medians:
#   ours:       target/release/deis-backup restore latest --only gateway   (from dest-ours)
#   rclone16:   rclone copy --transfers 16 DIR gw:BUCKET   (DIR: what rclone16 synced down)
#   s3cmd:      s3cmd sync DIR/ s3://BUCKET/
#
#   more env:  RESTORE=1          0: skip the restore comparison
#              RESTORE_ROUNDS=3   restore runs of each tool (medians are reported)
#              BACKUP=1           0: skip the backup comparison and restore from what a
#                                 previous run left in WORK_DIR (needs your own radosgw)
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
work=$(mkdir -p "${1:-bench/work/gateway}" && cd "${1:-bench/work/gateway}" && pwd)
concurrency=${CONCURRENCY:-16}
restore=${RESTORE:-1}
restore_rounds=${RESTORE_ROUNDS:-3}
backup=${BACKUP:-1}
buckets=(bench_db_wal bench_registry)

BENCH=gateway
# shellcheck source=bench/lib-gateway.sh
. bench/lib-gateway.sh

for tool in python3 s3cmd rclone /usr/bin/time cargo curl; do
    command -v "$tool" >/dev/null || die "$tool missing (run tests/testbed/install-deps.sh)"
done
trap gw_down EXIT
gw_up "$work"

seeded() {
    local n
    n=$(rclone_ size --json "gw:${buckets[0]}" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0)
    [[ $n -gt 1000 ]]
}

seed() {
    local src=$work/seed
    say "generating ~2,000 objects (~1.1 GiB, seeded) in $src"
    rm -rf "$src"
    python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20261125)
def put(path, size):
    p = os.path.join(root, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, 'wb') as f:
        f.write(rng.randbytes(size))
total = 0
# WAL-E: 16 MiB-ish WAL segments compressed to 4 KiB-2 MiB, base backup partitions up to 32 MiB
for i in range(1100):
    size = rng.choice([rng.randint(4 << 10, 64 << 10)] * 3 + [rng.randint(256 << 10, 2 << 20)])
    put(f'bench_db_wal/wal_005/{0x000000010000000000000000 + i:024X}.lzo', size); total += size
for b in range(3):
    base = f'basebackups_005/base_{0x000000010000000000000000 + b * 300:024X}_00000040'
    for part in range(8):
        size = rng.randint(8 << 20, 32 << 20)
        put(f'bench_db_wal/{base}/tar_partitions/part_{part:08d}.tar.lzo', size); total += size
    put(f'bench_db_wal/{base}_backup_stop_sentinel.json', 300); total += 300
# registry: layers of all sizes, small manifests and links
for i in range(300):
    digest = '%064x' % rng.getrandbits(256)
    size = rng.choice([rng.randint(4 << 10, 512 << 10)] * 3 + [rng.randint(1 << 20, 12 << 20)])
    put(f'bench_registry/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data', size); total += size
    put(f'bench_registry/docker/registry/v2/repositories/app{i % 40}/_layers/sha256/{digest}/link', 71)
    total += 71
for i in range(270):
    digest = '%064x' % rng.getrandbits(256)
    put(f'bench_registry/docker/registry/v2/repositories/app{i % 40}/_manifests/revisions/sha256/{digest}/link', 4096)
    total += 4096
n = sum(len(f) for _, _, f in os.walk(root))
print(f'{n} objects, {total / 2**30:.2f} GiB', file=sys.stderr)
PY
    for b in "${buckets[@]}"; do
        s3cmd -c "$s3cfg" mb "s3://$b" >/dev/null 2>&1 || true
        say "uploading into $b"
        rclone_ copy --transfers 16 "$src/$b" "gw:$b"
    done
    rm -rf "$src"
}

seeded || seed
say "building the release binary"
cargo build --release --quiet

results=$work/results.txt
: >"$results"

ours() {
    DEIS_BACKUP_GATEWAY__ENDPOINT=$endpoint DEIS_BACKUP_GATEWAY__ACCESS_KEY=$access \
        DEIS_BACKUP_GATEWAY__SECRET_KEY=$secret DEIS_BACKUP_GATEWAY__BUCKETS=bench_db_wal,bench_registry \
        DEIS_BACKUP_GATEWAY__CONCURRENCY=$concurrency DEIS_BACKUP_DESTINATION__URL="file://$work/dest-ours" \
        "$repo/target/release/deis-backup" backup gateway
}
s3cmd_sync() {
    for b in $BUCKETS_LIST; do s3cmd -c "$s3cfg" sync --no-progress "s3://$b" "$work/dest-s3cmd/"; done
}
rclone_sync() {
    for b in $BUCKETS_LIST; do rclone_ sync "$@" "gw:$b" "$work/dest-rclone$#/$b"; done
}
export -f ours s3cmd_sync rclone_sync
export endpoint access secret concurrency work repo s3cfg
export BUCKETS_LIST="${buckets[*]}"

if [[ $backup == 1 ]]; then
    rm -rf "$work"/dest-*
    run ours-full bash -c ours
    run ours-nochange bash -c ours
    run s3cmd-full bash -c s3cmd_sync
    run s3cmd-nochange bash -c s3cmd_sync
    run rclone-full bash -c rclone_sync
    run rclone-nochange bash -c rclone_sync
    run rclone16-full bash -c 'rclone_sync --transfers 16'
    run rclone16-nochange bash -c 'rclone_sync --transfers 16'
    python3 - "$results" "$work" <<'PY'
import json, glob, sys
rows = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1])}
stats = []
for m in sorted(glob.glob(sys.argv[2] + '/dest-ours/gateway/*/manifest.json')):
    stats.append(json.load(open(m))['stats'])
print()
print(f"{'run':<20}{'wall s':>9}{'peak RSS MiB':>14}{'vs ours':>9}")
for name, (wall, rss) in rows.items():
    base = rows['ours-nochange' if 'nochange' in name else 'ours-full'][0]
    print(f"{name:<20}{wall:>9.2f}{rss / 1024:>14.0f}{wall / base:>8.1f}x")
if len(stats) >= 2:
    f, n = stats[0], stats[-1]
    print(f"\nours full: {f['objects']} objects, {f['bytes'] / 2**30:.2f} GiB, copied {f['copied']}")
    print(f"ours no-change: copied {n['copied']} objects ({n['copied_bytes']} bytes), unchanged {n['unchanged']}")
print(f"targets: full >= 3x faster than s3cmd ({rows['s3cmd-full'][0] / rows['ours-full'][0]:.1f}x), "
      f"<= rclone --transfers 16 ({rows['rclone16-full'][0] / rows['ours-full'][0]:.2f}x), "
      f"no-change >= 5x faster than s3cmd ({rows['s3cmd-nochange'][0] / rows['ours-nochange'][0]:.1f}x), "
      f"peak RSS < 128 MiB ({max(rows['ours-full'][1], rows['ours-nochange'][1]) / 1024:.0f} MiB)")
PY
fi
[[ $restore == 1 ]] || exit 0

# The restore comparison: the same objects back onto empty buckets, from our latest gateway set
# and from the plain folder that rclone --transfers 16 synced down (dest-rclone2/BUCKET).
plain=$work/dest-rclone2
[[ -d $work/dest-ours/gateway && -d $plain ]] ||
    die "nothing to restore from in $work (run once with BACKUP=1)"
empty_buckets() {
    local b
    for b in "${buckets[@]}"; do
        if [[ -n ${TESTBED_CEPH_CONF:-} ]]; then
            # frees the objects' space now rather than at the next garbage collection
            radosgw-admin -c "$TESTBED_CEPH_CONF" -n client.admin bucket rm --bucket="$b" \
                --purge-objects --bypass-gc >/dev/null 2>&1 || true
        else
            rclone_ purge "gw:$b" >/dev/null 2>&1 || true
        fi
        s3cmd -c "$s3cfg" mb "s3://$b" >/dev/null || die "cannot make the empty bucket $b"
    done
}
# counted: every object is back (our restore says so too, the others only by their exit code)
all_back() {
    local b want got
    for b in "${buckets[@]}"; do
        want=$(find "$plain/$b" -type f | wc -l)
        got=$(rclone_ size --json "gw:$b" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
        [[ $got == "$want" ]] || die "$1 left $got of $want objects in $b"
    done
}
ours_restore() {
    DEIS_BACKUP_GATEWAY__ENDPOINT=$endpoint DEIS_BACKUP_GATEWAY__ACCESS_KEY=$access \
        DEIS_BACKUP_GATEWAY__SECRET_KEY=$secret DEIS_BACKUP_GATEWAY__CONCURRENCY=$concurrency \
        DEIS_BACKUP_DESTINATION__URL="file://$work/dest-ours" \
        "$repo/target/release/deis-backup" restore latest --only gateway
}
rclone_restore() {
    for b in $BUCKETS_LIST; do rclone_ copy --transfers 16 "$plain/$b" "gw:$b"; done
}
s3cmd_restore() {
    for b in $BUCKETS_LIST; do s3cmd -c "$s3cfg" sync --no-progress "$plain/$b/" "s3://$b/"; done
}
export -f ours_restore rclone_restore s3cmd_restore
export plain

results=$work/results-restore.txt
: >"$results"
say "restore: $restore_rounds round(s) of ours, rclone16, s3cmd onto empty buckets; $(uptime)"
for ((round = 1; round <= restore_rounds; round++)); do
    for tool in ours rclone s3cmd; do
        empty_buckets
        run "restore-$tool-$round" bash -c "${tool}_restore"
        all_back "$tool"
    done
done
say "load after the restore runs: $(uptime)"

python3 - "$results" <<'PY'
import statistics, sys
walls, rss = {}, {}
for line in open(sys.argv[1]):
    name, wall, kib = line.split()
    tool = name.split('-')[1]
    walls.setdefault(tool, []).append(float(wall))
    rss.setdefault(tool, []).append(int(kib))
ours = statistics.median(walls['ours'])
print()
print(f"{'restore':<20}{'median s':>9}{'runs s':>24}{'peak RSS MiB':>14}{'vs ours':>9}")
for tool, label in (('ours', 'ours'), ('rclone', 'rclone16'), ('s3cmd', 's3cmd')):
    runs = ' '.join(f'{w:.2f}' for w in walls[tool])
    med = statistics.median(walls[tool])
    print(f"{label:<20}{med:>9.2f}{runs:>24}{max(rss[tool]) / 1024:>14.0f}{med / ours:>8.2f}x")
print(f"restore targets: <= rclone copy --transfers 16 ({statistics.median(walls['rclone']) / ours:.2f}x), "
      f"peak RSS {max(rss['ours']) / 1024:.0f} MiB")
PY
