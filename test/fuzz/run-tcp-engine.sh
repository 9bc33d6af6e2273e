#!/bin/sh
# Builds test/fuzz/fuzz_tcp_engine.cc (the engine's OpenVPN-over-TCP entry, SslTcpChunk) with
# libFuzzer + ASan + UBSan and fuzzes it for a bounded time. Usage: test/fuzz/run-tcp-engine.sh
# [seconds=60]. Non-zero exit on a crash.
set -eu
cd "$(dirname "$0")/../.."
SECS="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz-tcp-engine}"
mkdir -p "$OUT/corpus"
NAPI_DIR="$(node -p "require('node-addon-api').include_dir")"
NODE_INC="$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")"
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  -I"$NAPI_DIR" -I"$NODE_INC" \
  test/fuzz/fuzz_tcp_engine.cc test/fuzz/fuzz_napi_stubs.cc src/native/engine/engine.cc src/native/engine/ssl-peers.cc \
  src/native/core/esp.cc src/native/core/ovpn.cc src/native/core/ovpn-tcp.cc src/native/core/offload.cc src/native/core/policy.cc \
  -lcrypto -o "$OUT/fuzz_tcp_engine"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_tcp_engine" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len=8192 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus"
