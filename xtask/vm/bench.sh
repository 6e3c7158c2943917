#!/bin/bash
# Runs inside the `cargo xtask bench` guest (see xtask/src/vm_bench.rs), chrooted into the
# host's read-only root: the criterion getAssertion round trip over uhid and over loopback TCP
# (ctap-tests/benches/roundtrip.rs, both servers in the benchmark's process; results in
# /tmp/results/criterion), then libfido2's `fido2-assert -G` timed on the uhid device
# (/tmp/results/fido2-assert.txt).
#
# usage: bench.sh BENCH_EXECUTABLE
set -u
BENCH=$1
export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$HOME"
cd /tmp || exit 1
PASSGATE_BENCH_UHID=1 PASSGATE_BENCH_LIBFIDO2=/tmp/results/fido2-assert.txt \
CRITERION_HOME=/tmp/results/criterion "$BENCH" --bench
echo "bench: exited $?"
