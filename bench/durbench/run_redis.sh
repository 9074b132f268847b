#!/bin/bash
# usage: run_redis.sh [pub|1m|all] — make bench-durable's runs (and, with
# 1m, bench-retained-1m's) on --store redis, each against a private
# redis-server on a loopback port with its data in a temporary directory:
# commit and none with appendonly yes / appendfsync everysec, sync with
# appendfsync always (which --durability sync requires).
set -u
what=${1:-pub}
RPORT=${REDIS_PORT:-26379}
start_redis() { # $1: appendfsync
  RD=$(mktemp -d /tmp/mcredis.XXXX)
  redis-server --port $RPORT --bind 127.0.0.1 --dir $RD --save '' --appendonly yes --appendfsync $1 \
    --daemonize no --logfile $RD/redis.log &
  RP=$!
  for i in $(seq 100); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.05; done
}
stop_redis() {
  echo "redis RSS: $(grep VmRSS /proc/$RP/status); AOF: $(du -sh $RD | cut -f1)"
  kill -TERM $RP; wait $RP; rm -rf $RD
}
command -v redis-server >/dev/null || { echo "redis-server not installed (apt-get install -y redis-server)"; exit 1; }
R="--store redis --redis-addr 127.0.0.1:$RPORT"
if [ "$what" = pub ] || [ "$what" = all ]; then
  for d in commit sync none; do
    fs=everysec; [ $d = sync ] && fs=always
    echo "== --store redis --durability $d (appendfsync $fs)"
    start_redis $fs
    bench/durbench/run_pub.sh redis-$d $R --durability $d
    stop_redis
  done
fi
if [ "$what" = 1m ] || [ "$what" = all ]; then
  echo "== --store redis, 1,000,000 retained (appendfsync everysec)"
  start_redis everysec
  EXTRA="$R" bench/durbench/run_1m.sh
  stop_redis
fi
