#!/usr/bin/env bash
# volume.sh - benchmark the volume job against its closest peer, GNU tar piped into zstd.
#
#   usage: bench/volume.sh [WORK_DIR]          (default bench/work, gitignored)
#   env:   REPS=2  repetitions of each command, run alternately
#          REGEN=1 rebuild the test trees even when complete ones are there
#          TREES="mixed logs"  which trees to run (default both)
#          TREE_DIR=DIR  keep the trees in DIR (DIR/tree-NAME) instead of WORK_DIR, e.g. on the
#                  test bed's CephFS (TREE_DIR=$TESTBED_CEPHFS_MOUNT/bench); outputs stay in
#                  WORK_DIR, so both commands read the trees there and write local disk
#          OURS=PATH  the deis-backup binary to time (default: cargo build --release, then
#                     target/release/deis-backup), e.g. to compare two builds
#
# Makes (once, seeded, so every run sees the same data) two trees under WORK_DIR (or TREE_DIR):
#   mixed: about 1 GiB in about 20,000 files: a few files of tens of MB, many small and tiny
#          ones, compressible log-like text and incompressible random data, some symlinks and
#          hard links;
#   logs:  the "Speed and scale" issue's tree: 15,000 small log files (0.5-16 KiB) and 12 files
#          of 48 MiB, each half log text and half random data (alternating 64 KiB blocks).
# Then, for each tree, with the page cache warmed (on ceph-fuse only the client's own cache,
# far smaller than the tree), times under /usr/bin/time -v, alternately:
#   ours:     deis-backup backup volume --volume-path TREE --destination file://OUT
#   tar|zstd: tar -cf - -C TREE . | zstd -3 -T0 > FILE
# and prints each run's wall time, user CPU, peak RSS and output size, and the wall-time ratio
# ours / tar|zstd (best run of each) with our peak RSS.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mkdir -p "${1:-bench/work}" && cd "${1:-bench/work}" && pwd)
reps=${REPS:-2}
generator_version=1

say() { printf '[volume-bench] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

for tool in python3 tar zstd /usr/bin/time cargo; do
    command -v "$tool" >/dev/null || die "$tool missing (run tests/testbed/install-deps.sh)"
done

make_mixed_tree() {
    say "generating the mixed test tree in $tree (seeded; takes a minute)"
    rm -rf "$tree"
    python3 - "$tree" <<'PY'
import os, random, sys

root = sys.argv[1]
rng = random.Random(20261125)
MTIME = 1_764_000_000  # fixed mtimes keep the archives comparable run to run

words = [''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=rng.randint(2, 10))) for _ in range(4000)]
levels = ['INFO', 'WARN', 'DEBUG', 'ERROR']
lines = [
    f'2026-11-{rng.randint(1, 30):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:'
    f'{rng.randint(0, 59):02d}Z {rng.choice(levels)} deis-{rng.choice(words)}[{rng.randint(1, 9999)}]: '
    + ' '.join(rng.choices(words, k=rng.randint(4, 16))) + '\n'
    for _ in range(50_000)
]

def text(size):
    out, n = [], 0
    while n < size:
        chunk = ''.join(rng.choices(lines, k=256))
        out.append(chunk)
        n += len(chunk)
    return ''.join(out).encode()[:size]

def content(size, random_share):
    return rng.randbytes(size) if rng.random() < random_share else text(size)

made = []
def write(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    os.utime(path, (MTIME, MTIME))
    made.append(rel)

MiB = 1 << 20
# large: 12 files of 24-72 MiB, half random (images, blobs), half logs
for i in range(12):
    size = rng.randint(24, 72) * MiB
    write(f'large/blob-{i:02d}.{"bin" if i % 2 else "log"}', rng.randbytes(size) if i % 2 else text(size))
# medium: 600 files of 64 KiB - 1 MiB
for i in range(600):
    write(f'medium/m{i % 20:02d}/file-{i:04d}.dat', content(rng.randint(64 << 10, MiB), 0.4))
# small and tiny: the rest of 20,000 files, 0 - 24 KiB, spread over many directories
for i in range(20_000 - 612 - 40):
    size = rng.choice([0, rng.randint(1, 512), rng.randint(512, 8 << 10), rng.randint(8 << 10, 24 << 10)])
    write(f'small/s{i % 50:02d}/t{i % 7}/f{i:05d}.txt', content(size, 0.2))
# links: 20 symlinks (one dangling, one to a directory) and 20 hard links
os.makedirs(os.path.join(root, 'links'), exist_ok=True)
for i in range(18):
    os.symlink(os.path.join('..', rng.choice(made)), os.path.join(root, f'links/sym-{i:02d}'))
os.symlink('../does/not/exist', os.path.join(root, 'links/dangling'))
os.symlink('../medium/m01', os.path.join(root, 'links/dir'))
for i in range(20):
    os.link(os.path.join(root, rng.choice(made)), os.path.join(root, f'links/hard-{i:02d}'))
PY
    echo "$generator_version" >"$tree/.complete"
}

make_logs_tree() {
    say "generating the logs test tree in $tree (seeded; takes a minute)"
    rm -rf "$tree"
    python3 - "$tree" <<'PY'
import os, random, sys

root = sys.argv[1]
rng = random.Random(20261202)
MTIME = 1_764_000_000
words = [''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=rng.randint(2, 10))) for _ in range(4000)]
lines = [
    f'2026-12-{rng.randint(1, 30):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:'
    f'{rng.randint(0, 59):02d}Z {rng.choice(["INFO", "WARN", "DEBUG"])} ceph-{rng.choice(words)}: '
    + ' '.join(rng.choices(words, k=rng.randint(4, 16))) + '\n'
    for _ in range(50_000)
]
text_pool = ''.join(rng.choices(lines, k=40_000)).encode()  # ~3.5 MB to slice log text from

def text(size):
    start = rng.randrange(0, len(text_pool) - size)
    return text_pool[start:start + size]

def write(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    os.utime(path, (MTIME, MTIME))

MiB, block = 1 << 20, 64 << 10
for i in range(12):
    parts = [rng.randbytes(block) if b % 2 else text(block) for b in range(48 * MiB // block)]
    write(f'osd/blob-{i:02d}.dat', b''.join(parts))
for i in range(15_000):
    write(f'logs/l{i % 60:02d}/ceph-{i:05d}.log', text(rng.randint(512, 16 << 10)))
PY
    echo "$generator_version" >"$tree/.complete"
}

# timed NAME OUTPUT CMD...: run CMD under /usr/bin/time -v; print one result line
timed() {
    local name=$1 output=$2 stats wall rss size
    shift 2
    stats=$work/time-$name.txt
    /usr/bin/time -v -o "$stats" "$@" >"$work/$name.out" 2>&1 ||
        { tail -n 20 "$work/$name.out" >&2; die "$name failed (output in $work/$name.out)"; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$stats")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$stats")
    user=$(awk -F': ' '/User time/ { print $2 }' "$stats")
    size=$(du -sb "$output" | cut -f1)
    ((size > 4096)) || die "$name wrote (almost) nothing to $output"
    printf '%-10s %8.2f %7.2f %11s %14d\n' "$name" "$wall" "$user" "$rss" "$size"
}

ours() {
    rm -rf "$work/out-ours" && mkdir -p "$work/out-ours"
    timed ours "$work/out-ours" "$ours_bin" backup volume \
        --volume-path "$tree" --destination "file://$work/out-ours"
}

peer() {
    rm -rf "$work/out-tar" && mkdir -p "$work/out-tar"
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
    timed tar-zstd "$work/out-tar" bash -c 'tar -cf - -C "$1" . | zstd -q -3 -T0 >"$2"' _ \
        "$tree" "$work/out-tar/store.tar.zst"
}

if [[ -n ${OURS:-} ]]; then
    ours_bin=$(realpath "$OURS")
else
    say "cargo build --release"
    cargo build --release --quiet
    ours_bin=${CARGO_TARGET_DIR:-target}/release/deis-backup
fi
[[ -x $ours_bin ]] || die "$ours_bin is not an executable"

for name in ${TREES:-mixed logs}; do
    tree=${TREE_DIR:-$work}/tree-$name
    mkdir -p "$(dirname "$tree")"
    [[ $name == mixed && -d $work/tree && ! -e $tree ]] && mv "$work/tree" "$tree" # older layout
    [[ ${REGEN:-0} != 1 && $(cat "$tree/.complete" 2>/dev/null) == "$generator_version" ]] ||
        "make_${name}_tree"
    # file bytes from find, not du: a CephFS folder's size is the bytes below it, counted again
    say "tree $name: $(find "$tree" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f MiB", s / 1048576 }')" \
        "in $(find "$tree" -type f | wc -l) files on $(findmnt -n -o FSTYPE -T "$tree") ($tree)"

    say "warming the page cache"
    # a tree just written to ceph-fuse can still change ctimes under tar: exit 1, not an error here
    tar --warning=no-file-changed -cf - -C "$tree" . | cat >/dev/null || (($? == 1))

    results=$work/results-$name.txt
    printf '%-10s %8s %7s %11s %14s\n' run wall_s user_s max_rss_MiB output_bytes | tee "$results"
    for ((i = 1; i <= reps; i++)); do
        ours | tee -a "$results"
        peer | tee -a "$results"
    done

    awk -v tree="$name" '
        $1 == "ours" && (best_ours == "" || $2 < best_ours) { best_ours = $2; rss = $4; size = $5 }
        $1 == "ours" && (max_rss == "" || $4 > max_rss) { max_rss = $4 }
        $1 == "tar-zstd" && (best_tar == "" || $2 < best_tar) { best_tar = $2; tsize = $5 }
        END {
            printf "\n[%s] wall-time ratio ours / tar|zstd (best of each): %.2f (%.2f s vs %.2f s)\n", tree, best_ours / best_tar, best_ours, best_tar
            printf "[%s] ours: peak RSS %.1f MiB (highest of all runs), output %d bytes; tar|zstd output %d bytes\n\n", tree, max_rss, size, tsize
        }' "$results"
done
