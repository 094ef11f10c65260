#!/usr/bin/env bash
# database.sh - benchmark the database job against the documented manual pipeline,
# `docker exec CONTAINER sudo -u postgres pg_dumpall | zstd -3 > FILE`.
#
#   usage: bench/database.sh [WORK_DIR]        (default bench/work/database; root, Docker engine)
#   env:   SCALE=100   pgbench scale of the bench database (100 gives a dump of about 1 GiB;
#                      SCALE=5 for a quick run of about 50 MiB)
#          REPS=5      repetitions of each command, run alternately (at least 5)
#          IMAGE=...   database image (default: the test bed's, built by
#                      tests/testbed/database-image.sh)
#          PEER_ZSTD="-3"  zstd options of the peer pipeline
#          OURS=PATH   the deis-backup binary to time (default target/release/deis-backup,
#                      built first), e.g. an older build for before/after figures
#
# Starts its own PostgreSQL container from IMAGE (removed at exit), fills database `bench`
# with `pgbench -i -s SCALE` and database `deis` with Deis-like tables, warms the page cache
# with one dump, then times under /usr/bin/time -v, alternately:
#   ours:  target/release/deis-backup backup database --destination file://WORK/out
#   peer:  docker exec CONTAINER sudo -u postgres pg_dumpall | zstd PEER_ZSTD > WORK/peer.sql.zst
# and prints each run's wall time, CPU time (user+sys of the command and its children), peak
# RSS and output size; then the median and best wall time of each, the ratio ours/peer of the
# medians (and of the bests), and our peak RSS over all runs.
# Targets (issue 11): median ratio <= 1.0, peak RSS <= 32 MiB.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mkdir -p "${1:-bench/work/database}" && cd "${1:-bench/work/database}" && pwd)
scale=${SCALE:-100}
reps=${REPS:-5}
peer_zstd=${PEER_ZSTD:--3}
ours=${OURS:-target/release/deis-backup}

say() { printf '[database-bench] %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

for tool in docker zstd /usr/bin/time cargo; do
    command -v "$tool" >/dev/null || die "$tool missing (run tests/testbed/install-deps.sh)"
done
[[ $scale =~ ^[0-9]+$ && $scale -ge 1 ]] || die "SCALE must be a positive integer"
[[ $reps =~ ^[0-9]+$ && $reps -ge 5 ]] || die "REPS must be at least 5 (medians of alternate runs)"

image=${IMAGE:-$(bash tests/testbed/database-image.sh)}
name=deis-backup-bench-$$-$RANDOM
cleanup() { docker rm -f -v "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting $name from $image"
docker run -d --name "$name" --label deis-backup-bench=1 "$image" >/dev/null
start=$SECONDS
until docker exec -u postgres "$name" pg_isready -q 2>/dev/null; do
    ((SECONDS - start < 90)) || die "postgres in $name did not become ready"
    sleep 0.2
done

as_pg() { docker exec -i -u postgres "$name" "$@"; }
say "filling database bench with pgbench -i -s $scale"
as_pg createdb bench
as_pg /usr/lib/postgresql/15/bin/pgbench -i -q -s "$scale" bench 2>&1 | tail -1 >&2
say "adding Deis-like tables in database deis"
as_pg createdb deis
as_pg psql -X -q -v ON_ERROR_STOP=1 -d deis <<'SQL'
CREATE TABLE auth_user (id serial PRIMARY KEY, username text UNIQUE NOT NULL, email text NOT NULL,
    password text NOT NULL);
CREATE TABLE api_app (uuid uuid PRIMARY KEY, id text UNIQUE NOT NULL,
    owner_id integer REFERENCES auth_user(id), structure text NOT NULL);
CREATE TABLE api_key (uuid uuid PRIMARY KEY, owner_id integer REFERENCES auth_user(id),
    public text NOT NULL);
CREATE TABLE api_domain (uuid uuid PRIMARY KEY, app_id uuid REFERENCES api_app(uuid),
    domain text UNIQUE NOT NULL);
INSERT INTO auth_user (username, email, password)
    SELECT 'user' || i, 'user' || i || '@example.com', md5(i::text) FROM generate_series(1, 2000) i;
INSERT INTO api_app (uuid, id, owner_id, structure)
    SELECT md5('app' || i)::uuid, 'app-' || i, 1 + i % 2000, '{"web": 1}'
    FROM generate_series(1, 5000) i;
INSERT INTO api_key (uuid, owner_id, public)
    SELECT md5('key' || i)::uuid, 1 + i % 2000, 'ssh-rsa ' || repeat(md5(i::text), 8)
    FROM generate_series(1, 4000) i;
INSERT INTO api_domain (uuid, app_id, domain)
    SELECT md5('dom' || i)::uuid, md5('app' || i)::uuid, 'app-' || i || '.example.com'
    FROM generate_series(1, 5000) i;
SQL

if [[ -z ${OURS:-} ]]; then
    say "building target/release/deis-backup"
    cargo build --release --quiet
fi
[[ -x $ours ]] || die "$ours is not an executable"
say "warming the page cache with one dump"
docker exec "$name" sudo -u postgres pg_dumpall | wc -c >"$work/dump.bytes"
dump_bytes=$(<"$work/dump.bytes")
say "dump size: $dump_bytes bytes ($((dump_bytes >> 20)) MiB)"

# timed RUN_NAME COMMAND...: runs under /usr/bin/time -v, prints "wall_seconds cpu_seconds rss_kib"
timed() {
    local log=$work/$1.time
    shift
    /usr/bin/time -v -o "$log" "$@" >/dev/null
    awk -F': ' '/Elapsed \(wall clock\)/ {
            n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
        /User time \(seconds\)|System time \(seconds\)/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %.2f %d\n", wall, cpu, rss }' "$log"
}

ours_walls=() peer_walls=() ours_rss=0
for ((i = 1; i <= reps; i++)); do
    rm -rf "$work/out"
    read -r wall cpu rss < <(timed ours env DEIS_BACKUP_DATABASE__CONTAINER="$name" DEIS_BACKUP_LOG=warn \
        "$ours" backup database --destination "file://$work/out")
    size=$(du -cb "$work"/out/database/*/pg_dumpall.sql.zst | tail -1 | cut -f1)
    printf 'run %d  ours  %7.2f s  cpu %6.2f s  peak RSS %6d KiB  %12d bytes\n' "$i" "$wall" "$cpu" "$rss" "$size"
    ((rss > ours_rss)) && ours_rss=$rss
    ours_walls+=("$wall")

    # shellcheck disable=SC2016 # expanded by the inner shell
    read -r wall cpu rss < <(timed peer bash -c 'set -o pipefail; docker exec "$1" sudo -u postgres pg_dumpall | zstd -q $2 >"$3"' \
        _ "$name" "$peer_zstd" "$work/peer.sql.zst")
    size=$(stat -c %s "$work/peer.sql.zst")
    printf 'run %d  peer  %7.2f s  cpu %6.2f s  peak RSS %6d KiB  %12d bytes\n' "$i" "$wall" "$cpu" "$rss" "$size"
    peer_walls+=("$wall")
done

# stats WALL...: prints "median best"
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", m, v[1] }'; }
read -r med_ours best_ours < <(stats "${ours_walls[@]}")
read -r med_peer best_peer < <(stats "${peer_walls[@]}")
awk -v mo="$med_ours" -v mp="$med_peer" -v bo="$best_ours" -v bp="$best_peer" -v r="$ours_rss" \
    -v d="$dump_bytes" -v s="$scale" -v n="$reps" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
    printf "scale %d, dump %.0f MiB, %d runs each, load average at the end %s\n", s, d / 1048576, n, load
    printf "median wall ours %.2f s, peer %.2f s, ratio ours/peer %.3f (target <= 1.0)\n", mo, mp, mo / mp
    printf "best wall ours %.2f s, peer %.2f s, ratio ours/peer %.3f\n", bo, bp, bo / bp
    printf "our peak RSS: %.1f MiB (target <= 32 MiB)\n", r / 1024 }'
