#!/bin/sh
# Fuzzes test/fuzz/fuzz_inbound.cc (the data-plane engine's inbound demux: ESP / IKE marker /
# keepalive / SSL P_DATA by peer-id, with SAs and sessions installed) for a bounded time.
# Usage: test/fuzz/run-inbound.sh [seconds=60]. Built and run by run-engine-target.sh.
exec sh "$(dirname "$0")/run-engine-target.sh" inbound "${1:-60}" 4097
