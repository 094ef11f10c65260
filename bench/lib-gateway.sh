# lib-gateway.sh - what the gateway benchmarks share (sourced, not run): a radosgw to read
# (the caller's, or one brought up under a work folder and torn down at exit), s3cmd and
# rclone configured for it, and a timer that records wall time and peak RSS.
#
#   BENCH=name; . bench/lib-gateway.sh; gw_up WORK_DIR; ... run NAME CMD...
#   env: TESTBED_S3_ENDPOINT, TESTBED_GATEWAY_ACCESS_KEY, TESTBED_GATEWAY_SECRET_KEY: use that
#        radosgw; unset: bring one up (bluestore, TESTBED_OSD_GB, default 6)

say() { printf '[%s-bench] %s\n' "${BENCH:-gateway}" "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

own_rgw=
gw_down() {
    if [[ -n $own_rgw ]]; then
        say "tearing down the radosgw under $own_rgw"
        bash tests/testbed/rgw-down.sh "$own_rgw" >&2 || true
    fi
}

# gw_up WORK: sets endpoint, access, secret, s3cfg (an s3cmd config) and rclone's `gw:` remote
gw_up() {
    local work=$1
    if [[ -z ${TESTBED_S3_ENDPOINT:-} ]]; then
        own_rgw=$work/rgw
        say "bringing up radosgw (bluestore) under $own_rgw"
        TESTBED_OSD_STORE=bluestore TESTBED_OSD_GB=${TESTBED_OSD_GB:-6} \
            bash tests/testbed/rgw-up.sh "$own_rgw" >&2
        set -a
        # shellcheck source=/dev/null
        . "$own_rgw/env"
        set +a
    fi
    endpoint=$TESTBED_S3_ENDPOINT
    access=$TESTBED_GATEWAY_ACCESS_KEY
    secret=$TESTBED_GATEWAY_SECRET_KEY
    local hostport=${endpoint#http://}
    s3cfg=$work/s3cfg
    (
        umask 077
        cat >"$s3cfg" <<CFG
[default]
access_key = $access
secret_key = $secret
host_base = $hostport
host_bucket = $hostport
use_https = False
bucket_location = us-east-1
CFG
    )
    export RCLONE_CONFIG_GW_TYPE=s3 RCLONE_CONFIG_GW_PROVIDER=Ceph \
        RCLONE_CONFIG_GW_ENDPOINT=$endpoint RCLONE_CONFIG_GW_ACCESS_KEY_ID=$access \
        RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=$secret RCLONE_CONFIG_GW_FORCE_PATH_STYLE=true
    export endpoint access secret s3cfg
}

# rclone 1.60 refuses to start with AWS_CA_BUNDLE set ("unsupported transport")
rclone_() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
export -f rclone_

# run NAME CMD...: times CMD into $work, appends "NAME wall_seconds rss_kib" to $results
run() {
    local name=$1
    shift
    sync
    /usr/bin/time -v -o "$work/time-$name.txt" "$@" >"$work/out-$name.log" 2>&1 ||
        {
            tail -n 30 "$work/out-$name.log" >&2
            die "$name failed"
        }
    local wall rss
    wall=$(python3 - "$work/time-$name.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r'Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)', t)
h, mi, s = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
print(f'{h * 3600 + mi * 60 + s:.2f}')
PY
)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time-$name.txt")
    echo "$name $wall $rss" >>"$results"
    say "$name: ${wall}s, peak RSS $((rss / 1024)) MiB"
}
