#!/bin/bash
set -u; EXTRA=${EXTRA:-}
D=/tmp/mcdata-1m
B=${DURBENCH:-bin/durbench}; FILLMODE=${FILLMODE:-fill1}
rm -rf $D; mkdir -p $D
start_broker() {
  ${MCUTIE:-bin/mcutie} --data-dir $D --listen tcp://127.0.0.1:${PORT:-28830} --metrics-listen "" $EXTRA 2>>/tmp/mc-1m.log &
  P=$!
  for i in $(seq 600); do grep -q 'mcutie started' /tmp/mc-1m.log && break; sleep 0.1; done
}
: > /tmp/mc-1m.log
start_broker
echo "fill: broker pid $P"
/usr/bin/time -f "fill wall %e s" $B -mode $FILLMODE -addr 127.0.0.1:${PORT:-28830} -n 1000000 -payload 64
echo "after fill: $(grep VmRSS /proc/$P/status)"
kill -TERM $P; wait $P
echo "data dir after fill: $(du -sh $D | cut -f1)"
: > /tmp/mc-1m.log
T0=$(date +%s.%N)
start_broker
T1=$(date +%s.%N)
echo "restart: broker pid $P; start-up wall $(echo "$T1 - $T0" | bc) s (poll 0.1 s)"
grep 'state loaded' /tmp/mc-1m.log
echo "RSS after start: $(grep VmRSS /proc/$P/status)"
sleep 2
echo "RSS 2 s after start: $(grep VmRSS /proc/$P/status)"
$B -mode rsub -addr 127.0.0.1:${PORT:-28830} -n 1000000 -dur 120s
echo "RSS after the # subscriber: $(grep -E 'VmRSS|VmHWM' /proc/$P/status | tr '\n' ' ')"
kill -TERM $P; wait $P
echo "data dir: $(du -sh $D | cut -f1)"
