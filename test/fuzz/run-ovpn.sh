#!/bin/sh
# Builds test/fuzz/fuzz_ovpn.cc (the native OpenVPN data channel) with libFuzzer + ASan + UBSan and
# fuzzes it for a bounded time. Usage: test/fuzz/run-ovpn.sh [seconds=60]. Non-zero exit on a crash.
set -eu
cd "$(dirname "$0")/../.."
SECS="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz-ovpn}"
mkdir -p "$OUT/corpus"
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter \
  test/fuzz/fuzz_ovpn.cc src/native/core/ovpn.cc -lcrypto -o "$OUT/fuzz_ovpn"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_ovpn" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len=4097 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus"
