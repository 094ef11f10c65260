#!/usr/bin/env bash
# etcd-up.sh - start a throw-away etcd 3.4 (Debian etcd-server) that speaks both the
# v2 keys API (what Deis v1 uses) and v3, on free 127.0.0.1 ports.
#
#   usage: etcd-up.sh DIR        stop it again with: etcd-down.sh DIR
#
# DIR receives the data (DIR/data), the log, the pid file and DIR/env, which holds
# TESTBED_ETCD_* assignments. Returns once both APIs answer. ETCD_BIN overrides the binary.
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$(tb_use_dir "${1:?usage: etcd-up.sh DIR}")
bin=${ETCD_BIN:-/usr/bin/etcd}
[[ -x $bin ]] || tb_die "$bin not found (apt-get install etcd-server)"
command -v curl >/dev/null || tb_die "curl not found"

client=$(tb_free_port)
peer=$(tb_free_port)
url=http://127.0.0.1:$client
rm -rf "$dir/data" "$dir/etcd.log"

tb_spawn "$dir" etcd "$bin" \
    --name testbed --data-dir "$dir/data" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "testbed=http://127.0.0.1:$peer" \
    --initial-cluster-state new --enable-v2=true \
    --heartbeat-interval 50 --election-timeout 500

v2_ready() { curl -fsS --max-time 2 "$url/v2/keys/"; }
# v3 through etcd's JSON gateway: a range read of key "\0" (base64 "AA==")
v3_ready() { curl -fsS --max-time 2 -X POST -d '{"key":"AA=="}' "$url/v3/kv/range"; }
tb_wait 30 "etcd v2 API on $url" "$dir" etcd v2_ready
tb_wait 30 "etcd v3 API on $url" "$dir" etcd v3_ready

cat >"$dir/env" <<ENV
TESTBED_ETCD_ENDPOINT=$url
TESTBED_ETCD_BIN=$bin
ENV
tb_log "etcd up: $url (pid $(<"$dir/etcd.pid"))"
