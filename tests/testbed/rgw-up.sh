#!/usr/bin/env bash
# rgw-up.sh - a one-node Ceph 16 cluster (mon, one OSD, radosgw) that stands in for the
# Deis store-gateway, on free 127.0.0.1 ports, everything under DIR.
#
#   usage: rgw-up.sh DIR        stop it again with: rgw-down.sh DIR
#
# Two S3 users are made:
#   gateway      owns buckets db_wal and registry (what the Deis store-gateway holds)
#   destination  owns bucket deis-backups (the off-cluster backup destination)
# DIR/env receives the TESTBED_S3_* / TESTBED_GATEWAY_* / TESTBED_DEST_* assignments;
# DIR/s3cfg-gateway and DIR/s3cfg-destination are ready-made s3cmd configurations.
#
# Knobs: TESTBED_OSD_STORE=memstore|bluestore (default memstore: quickest start; data sits in
# the OSD's memory, capped at TESTBED_OSD_GB, default 4), TESTBED_CEPH_MGR=1 adds a ceph-mgr
# (not needed by S3; only for `ceph df`-style commands).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=$(tb_use_dir "${1:?usage: rgw-up.sh DIR}")
store=${TESTBED_OSD_STORE:-memstore}
osd_gb=${TESTBED_OSD_GB:-4}
with_mgr=${TESTBED_CEPH_MGR:-0}
for tool in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool uuidgen curl ss; do
    command -v "$tool" >/dev/null || tb_die "$tool not found (run tests/testbed/install-deps.sh)"
done

mon_port=$(tb_free_port)
s3_port=$(tb_free_port)
s3_url=http://127.0.0.1:$s3_port
conf=$dir/ceph.conf
keyring=$dir/keyring
rm -rf "$dir"/{mon,osd,mgr,run,ceph.conf,keyring,*.log}
mkdir -p "$dir"/{mon/a,osd/0,mgr/x,run}

# A failed bring-up leaves nothing running behind.
trap 'rc=$?; ((rc == 0)) || "$here/rgw-down.sh" "$dir" >&2 || true' EXIT

write_conf() {
    local osd_store
    if [[ $store == bluestore ]]; then
        osd_store="osd_objectstore = bluestore
bluestore_block_path = $dir/osd/\$id/block.img
bluestore_block_create = true
bluestore_block_size = $((osd_gb << 30))
bluestore_cache_size = 134217728"
    else
        osd_store="osd_objectstore = memstore
memstore_device_bytes = $((osd_gb << 30))"
    fi
    cat >"$conf" <<CONF
# test bed only: one monitor, one OSD, no replica, nothing reachable off 127.0.0.1
[global]
fsid = $(uuidgen)
mon_host = v2:127.0.0.1:$mon_port
public_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_msgr1 = false
keyring = $keyring
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
log_file = $dir/\$name.log
crash_dir = $dir/run
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true

[mon]
mon_data = $dir/mon/\$id
mon_cluster_log_file = $dir/cluster.log
# the monitor refuses to run below 5% free disk by default; tests run on busy disks
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# commit map changes (pool creation) quickly
paxos_propose_interval = 0.05

[mgr]
mgr_data = $dir/mgr/\$id

[osd]
osd_data = $dir/osd/\$id
$osd_store
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
osd_memory_target = 939524096

[client.rgw.gw]
rgw_frontends = beast endpoint=127.0.0.1:$s3_port
rgw_thread_pool_size = 32
rgw_dynamic_resharding = false
# the Deis bucket db_wal has an underscore, which strict S3 naming rejects
rgw_relaxed_s3_bucket_names = true
# reclaim the space of deleted objects within about a minute
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
CONF
}

# every daemon's key goes into one keyring that the monitor imports at mkfs
add_key() {
    local name=$1
    shift
    ceph-authtool "$keyring" --gen-key -n "$name" "$@" >/dev/null
}
write_keys() {
    ceph-authtool --create-keyring "$keyring" >/dev/null
    add_key mon. --cap mon 'allow *'
    add_key client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *'
    add_key osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
    add_key mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *'
    add_key client.rgw.gw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw'
    chmod 600 "$keyring"
}

cephc() { timeout 20 ceph -c "$conf" --connect-timeout 5 "$@"; }
osd_is_up() { cephc osd dump -f json | grep -q '"up":1'; }
s3_answers() { curl -fsS --max-time 2 -o /dev/null "$s3_url/"; }

# make_user UID ACCESS SECRET: create an S3 user with the given keys
make_user() {
    radosgw-admin -c "$conf" -n client.admin user create --uid="$1" --display-name="test bed $1" \
        --access-key="$2" --secret-key="$3" >"$dir/user-$1.json" 2>>"$dir/radosgw-admin.log" ||
        tb_die "radosgw-admin could not create user $1"
}

# make_bucket ACCESS SECRET NAME: S3 CreateBucket, signed with SigV4 by curl itself
make_bucket() {
    curl -fsS --max-time 10 -o /dev/null -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$1:$2" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$s3_url/$3" ||
        tb_die "could not create bucket $3"
}

write_s3cfg() {
    cat >"$dir/s3cfg-$1" <<CFG
[default]
access_key = $2
secret_key = $3
host_base = 127.0.0.1:$s3_port
host_bucket = 127.0.0.1:$s3_port
use_https = False
bucket_location = us-east-1
CFG
}

write_conf
write_keys
TB_LOGS+=("$dir/mon.a.log" "$dir/osd.0.log" "$dir/client.rgw.gw.log")

monmaptool --create --fsid "$(sed -n 's/^fsid = //p' "$conf")" --addv a "[v2:127.0.0.1:$mon_port]" \
    "$dir/run/monmap" >/dev/null
ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/run/monmap" --keyring "$keyring"
tb_spawn "$dir" mon ceph-mon -c "$conf" -i a -f
tb_wait 30 "monitor on 127.0.0.1:$mon_port" "$dir" mon cephc mon stat

[[ $with_mgr == 1 ]] && tb_spawn "$dir" mgr ceph-mgr -c "$conf" -i x -f

osd_uuid=$(uuidgen)
osd_id=$(cephc osd new "$osd_uuid")
[[ $osd_id == 0 ]] || tb_die "expected OSD id 0, the monitor gave '$osd_id'"
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/osd-mkfs.log" 2>&1 ||
    { TB_LOGS+=("$dir/osd-mkfs.log"); tb_die "ceph-osd --mkfs failed"; }
tb_spawn "$dir" osd ceph-osd -c "$conf" -i 0 -f
tb_wait 60 "OSD 0 ($store)" "$dir" osd osd_is_up

# radosgw creates its pools on first start
tb_spawn "$dir" rgw radosgw -c "$conf" -n client.rgw.gw -f
tb_wait 60 "radosgw on $s3_url" "$dir" rgw s3_answers

gw_access=$(tb_random_key 20) gw_secret=$(tb_random_key 40)
dest_access=$(tb_random_key 20) dest_secret=$(tb_random_key 40)
make_user gateway "$gw_access" "$gw_secret"
make_user destination "$dest_access" "$dest_secret"
make_bucket "$gw_access" "$gw_secret" db_wal
make_bucket "$gw_access" "$gw_secret" registry
make_bucket "$dest_access" "$dest_secret" deis-backups
write_s3cfg gateway "$gw_access" "$gw_secret"
write_s3cfg destination "$dest_access" "$dest_secret"

cat >"$dir/env" <<ENV
TESTBED_S3_ENDPOINT=$s3_url
TESTBED_S3_REGION=us-east-1
TESTBED_GATEWAY_ACCESS_KEY=$gw_access
TESTBED_GATEWAY_SECRET_KEY=$gw_secret
TESTBED_GATEWAY_BUCKETS=db_wal,registry
TESTBED_DEST_ACCESS_KEY=$dest_access
TESTBED_DEST_SECRET_KEY=$dest_secret
TESTBED_DEST_BUCKET=deis-backups
TESTBED_CEPH_CONF=$conf
ENV
tb_log "radosgw up: $s3_url (buckets db_wal, registry, deis-backups; store $store)"
