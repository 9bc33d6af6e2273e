#!/bin/sh
# Builds test/fuzz/fuzz_policy.cc (the data path's policy stage: ACLs and VPC endpoint NAT) with
# libFuzzer + ASan + UBSan and fuzzes it for a bounded time. Usage: test/fuzz/run-policy.sh
# [seconds=60]. Non-zero exit on a crash or a broken checksum invariant. Needs clang++ only.
set -eu
cd "$(dirname "$0")/../.."
SECS="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz-policy}"
mkdir -p "$OUT/corpus"
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter \
  test/fuzz/fuzz_policy.cc src/native/core/policy.cc -o "$OUT/fuzz_policy"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_policy" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len=2048 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus"
