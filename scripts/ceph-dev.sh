#!/usr/bin/env bash
# A one-node Ceph cluster for the object-storage tests: one monitor, one
# memstore OSD (no disk) and radosgw on 127.0.0.1, all state under DIR,
# no cephx authentication (the monitor then needs ms_mon_client_mode = crc).
# Needs the Debian packages ceph-mon, ceph-osd, radosgw and ceph-common.
#
#   scripts/ceph-dev.sh start DIR   # prints the S3 endpoint and the test user's keys,
#                                   # and makes the test bucket (BV_CEPH_BUCKET,
#                                   # default bvstore-test), BUCKET-backups beside
#                                   # it, and a second user bvstore-other with a
#                                   # bucket bvstore-other
#   scripts/ceph-dev.sh stop DIR    # stops every daemon started under DIR
#   scripts/ceph-dev.sh stop-rgw DIR   # kills radosgw only (the cluster keeps its data)
#   scripts/ceph-dev.sh start-rgw DIR  # starts it again and waits until it answers
#
# BV_CEPH_RGW_PORT (default 7480) and BV_CEPH_MON_PORT (default 6789)
# choose the ports. No manager daemon is started: the tests need none.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?state directory}
port=${BV_CEPH_RGW_PORT:-7480}
mon_port=${BV_CEPH_MON_PORT:-6789}
conf="$dir/ceph.conf"

stop() {
  local pids=()
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    pids+=("$(cat "$pidfile")")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "${pids[@]}" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

start_rgw() {
  radosgw -c "$conf" -n client.rgw.a
  local up=
  for _ in $(seq 1 60); do
    if curl -sf "http://127.0.0.1:$port" >/dev/null; then up=1; break; fi
    sleep 1
  done
  if [ -z "$up" ]; then
    echo "radosgw did not answer on 127.0.0.1:$port within 60 s; logs in $dir" >&2
    exit 1
  fi
}

stop_rgw() {
  local pidfile="$dir/run/client.rgw.a.pid"
  [ -e "$pidfile" ] || { echo "no radosgw pid file under $dir" >&2; exit 1; }
  local pid
  pid=$(cat "$pidfile")
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  echo "radosgw ($pid) did not die" >&2
  exit 1
}

start() {
  mkdir -p "$dir"/{run,log,mon,osd,rgw}
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat > "$conf" <<CONF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$mon_port
public_network = 127.0.0.0/8
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
osd_objectstore = memstore
memstore_device_bytes = 8589934592
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_max_pg_per_osd = 1000
# The monitor refuses to start (and later stops) when the file system
# holding its data has less than 5% free: a shared CI disk often has.
# Its data is a few MiB; the OSD keeps its objects in memory.
mon_data_avail_crit = 0
mon_data_avail_warn = 0
run_dir = $dir/run
pid_file = $dir/run/\$name.pid
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
mon_data = $dir/mon/\$cluster-\$id
osd_data = $dir/osd/\$cluster-\$id
osd_crush_chooseleaf_type = 0
# An OSD places itself in the CRUSH map when it starts, by a command to
# the monitor; now and then, just after the monitor came up, that command
# goes out with a zero fsid and is refused ('wrong fsid'), and the OSD
# exits. The script places it instead (ceph osd crush add, below).
osd_crush_update_on_start = false
osd_class_update_on_start = false
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$port
rgw_data = $dir/rgw
# Deleted and overwritten objects' data is freed by radosgw's garbage
# collector, after two hours by default: in memory, benchmarks and the
# 200 MiB test would fill the OSD first.
rgw_gc_obj_min_wait = 10
rgw_gc_processor_period = 10
CONF
  monmaptool --create --add a "127.0.0.1:$mon_port" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap"
  ceph-mon -c "$conf" -i a
  local id
  id=$(ceph -c "$conf" osd create)
  mkdir -p "$dir/osd/ceph-$id"
  ceph-osd -c "$conf" -i "$id" --mkfs
  ceph -c "$conf" osd crush add "osd.$id" 1.0 root=default >/dev/null 2>&1
  ceph-osd -c "$conf" -i "$id"
  start_rgw
  radosgw-admin -c "$conf" user create --uid=bvstore --display-name=bvstore \
    --access-key=bvstore-access --secret=bvstore-secret >/dev/null
  python3 "$(dirname "$0")/s3-mkbucket.py" "http://127.0.0.1:$port" "${BV_CEPH_BUCKET:-bvstore-test}" \
    bvstore-access bvstore-secret >&2
  # A second bucket of the same user (backups into another bucket), and a
  # second user with a bucket of its own, who cannot read the first's.
  python3 "$(dirname "$0")/s3-mkbucket.py" "http://127.0.0.1:$port" \
    "${BV_CEPH_BUCKET:-bvstore-test}-backups" bvstore-access bvstore-secret >&2
  radosgw-admin -c "$conf" user create --uid=bvstore-other --display-name=bvstore-other \
    --access-key=bvstore-other-access --secret=bvstore-other-secret >/dev/null
  python3 "$(dirname "$0")/s3-mkbucket.py" "http://127.0.0.1:$port" bvstore-other \
    bvstore-other-access bvstore-other-secret >&2
  echo "endpoint=http://127.0.0.1:$port access_key=bvstore-access secret_key=bvstore-secret"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  start-rgw) start_rgw ;;
  stop-rgw) stop_rgw ;;
  *) echo "usage: $0 start|stop|start-rgw|stop-rgw DIR" >&2; exit 2 ;;
esac
