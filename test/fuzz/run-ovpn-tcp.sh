#!/bin/sh
# Builds test/fuzz/fuzz_ovpn_tcp.cc (the OpenVPN TCP stream framing parser) with libFuzzer + ASan +
# UBSan and fuzzes it for a bounded time. Usage: test/fuzz/run-ovpn-tcp.sh [seconds=60]. Non-zero
# exit on a crash or a difference from the whole-stream model.
set -eu
cd "$(dirname "$0")/../.."
SECS="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz-ovpn-tcp}"
mkdir -p "$OUT/corpus"
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter \
  test/fuzz/fuzz_ovpn_tcp.cc src/native/core/ovpn-tcp.cc -o "$OUT/fuzz_ovpn_tcp"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_ovpn_tcp" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len=8192 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus"
