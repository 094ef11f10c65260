#!/usr/bin/env bash
# build.sh - build the deis-backup container image, tagged deis-backup:<crate version> and
# deis-backup:latest, and print the versioned name.
#
#   usage: bash deploy/image/build.sh [--base IMAGE] [--binary PATH] [--name NAME]
#
#   --base IMAGE   the image to build on (default debian:bookworm-slim, which needs a registry;
#                  `bash deploy/image/base-image.sh` builds a local one from Debian packages)
#   --binary PATH  put this deis-backup binary in the image instead of running
#                  `cargo build --release` (tests use the debug binary)
#   --name NAME    image repository name (default deis-backup)
#
# The binary links glibc >= 2.34: the base must be Debian 12 or as new. The build context is
# a temporary folder holding only the Dockerfile and the binary. The image is smoke-tested
# (`deis-backup --version` inside it) before the script reports success.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

base=debian:bookworm-slim
binary=
name=deis-backup
while (($#)); do
    case $1 in
        --base) base=${2:?--base needs an image}; shift 2 ;;
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --name) name=${2:?--name needs a name}; shift 2 ;;
        -h | --help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
[[ -n $version ]] || die "no version in $root/Cargo.toml"

if [[ -z $binary ]]; then
    log "cargo build --release (a few minutes)"
    (cd "$root" && cargo build --release --locked --bin deis-backup) || die "cargo build failed"
    target=${CARGO_TARGET_DIR:-target}
    [[ $target == /* ]] || target=$root/$target # cargo ran in $root
    binary=$target/release/deis-backup
fi
[[ -x $binary ]] || die "$binary is not an executable file"
docker info >/dev/null 2>&1 || die "no Docker engine answers"

context=$(mktemp -d "${TMPDIR:-/tmp}/deis-backup-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$context/Dockerfile"
cp "$binary" "$context/deis-backup"
chmod 0755 "$context/deis-backup"
# debug info is of no use in the image (a debug build carries ~250 MB of it)
if command -v strip >/dev/null; then strip --strip-debug "$context/deis-backup"; fi

log "building $name:$version on $base from $binary"
docker build --quiet --build-arg "BASE=$base" \
    --label "org.opencontainers.image.version=$version" \
    -t "$name:$version" -t "$name:latest" "$context" >&2 || die "docker build failed"
out=$(docker run --rm "$name:$version" --version 2>&1) ||
    die "the image does not run the binary (glibc too old in $base?): $out"
log "built $name:$version and $name:latest ($out)"
echo "$name:$version"
