#!/bin/sh
# Builds test/fuzz/fuzz_decap.cc with libFuzzer + ASan + UBSan (clang; `apt-get install clang`),
# runs it once over every seed (the TS encoder's differential vectors: an ASan pass over the native
# decap, TSO and GRO code), then fuzzes for a bounded time. Usage: test/fuzz/run.sh [seconds=60]
# Needs dist/ (npx tsc -p tsconfig.build.json) for the seeds. Exit status non-zero on any crash.
set -eu
cd "$(dirname "$0")/../.."
SECS="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz}"
mkdir -p "$OUT/corpus"
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter \
  test/fuzz/fuzz_decap.cc src/native/core/esp.cc src/native/core/offload.cc -lcrypto -o "$OUT/fuzz_decap"
node test/fuzz/make-seeds.mjs "$OUT/seeds"
echo "== ASan/UBSan pass over the seeds"
"$OUT/fuzz_decap" -artifact_prefix="$OUT/" -runs=0 "$OUT/seeds"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_decap" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len=4096 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus" "$OUT/seeds"
