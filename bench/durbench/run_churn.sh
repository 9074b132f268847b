#!/bin/bash
D=/tmp/mcdata-churn; rm -rf $D; mkdir -p $D
: > /tmp/mc-churn.log
${MCUTIE:-bin/mcutie} --data-dir $D --listen tcp://127.0.0.1:${PORT:-28831} --metrics-listen 127.0.0.1:${METRICS_PORT:-29101} 2>>/tmp/mc-churn.log &
P=$!
for i in $(seq 100); do grep -q 'mcutie started' /tmp/mc-churn.log && break; sleep 0.1; done
echo "broker pid $P"
${DURBENCH:-bin/durbench} -mode churn -addr 127.0.0.1:${PORT:-28831} -dur ${DUR:-10m} -dir $D
curl -s 127.0.0.1:${METRICS_PORT:-29101}/metrics | grep -E '^mcutie_store_(ops|ops_rejected|batches|errors|vlog_gc_rewrites|written_bytes)_total|^mcutie_retained_messages|^mcutie_sessions|^mcutie_queued' | head -20
echo "RSS: $(grep -E 'VmRSS|VmHWM' /proc/$P/status | tr '\n' ' ')"
ls -la $D | head -30
kill -TERM $P; wait $P
echo "after stop: $(du -sh $D)"
: > /tmp/mc-churn2.log
${MCUTIE:-bin/mcutie} --data-dir $D --listen tcp://127.0.0.1:${PORT:-28831} --metrics-listen '' 2>>/tmp/mc-churn2.log &
P=$!
for i in $(seq 300); do grep -q 'mcutie started' /tmp/mc-churn2.log && break; sleep 0.1; done
grep 'state loaded' /tmp/mc-churn2.log | tail -1
echo "RSS after restart: $(grep VmRSS /proc/$P/status)"
kill -TERM $P; wait $P
grep -cE 'level=(WARN|ERROR)' /tmp/mc-churn.log
