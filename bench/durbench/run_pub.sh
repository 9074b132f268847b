#!/bin/bash
# usage: run_pub.sh <label> <mcutie flags...>
label=$1; shift
D=$(mktemp -d /tmp/mcdata.XXXX)
${MCUTIE:-bin/mcutie} --data-dir $D --listen tcp://127.0.0.1:${PORT:-28830} --metrics-listen 127.0.0.1:${METRICS_PORT:-29100} "$@" 2>/tmp/mc-$label.log &
P=$!
for i in $(seq 50); do grep -q 'mcutie started' /tmp/mc-$label.log && break; sleep 0.1; done
${DURBENCH:-bin/durbench} -mode pub -addr 127.0.0.1:${PORT:-28830} -pubs 10 -dur 10s -payload 64 -window 64
curl -s 127.0.0.1:${METRICS_PORT:-29100}/metrics | grep -E "^mcutie_store_(batches|syncs|txns|ops|ops_rejected)_total|^mcutie_store_commit_batch_ops_(sum|count)|^mcutie_store_commit_seconds_(sum|count)" | head -12
echo "broker RSS: $(grep VmRSS /proc/$P/status)"
kill -TERM $P; wait $P
echo "data dir: $(du -sh $D | cut -f1)"
rm -rf $D
