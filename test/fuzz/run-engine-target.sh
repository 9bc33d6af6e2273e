#!/bin/sh
# Builds one libFuzzer harness around the data-plane engine, test/fuzz/fuzz_NAME.cc, linked with the
# engine, its cores and the stub N-API and libuv symbols of fuzz_napi_stubs.cc (the engine never calls
# into JS in a harness), with ASan + UBSan, and fuzzes it for a bounded time. Non-zero exit on a
# crash. Usage: test/fuzz/run-engine-target.sh NAME SECONDS MAX_LEN (output in $FUZZ_OUT, default
# /tmp/vpcgw-fuzz-NAME). Needs clang++, libssl-dev and the Node.js headers.
set -eu
cd "$(dirname "$0")/../.."
NAME="$1"
SECS="$2"
MAXLEN="$3"
OUT="${FUZZ_OUT:-/tmp/vpcgw-fuzz-$NAME}"
mkdir -p "$OUT/corpus"
NAPI_DIR="$(node -p "require('node-addon-api').include_dir")"
NODE_INC="$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")"
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
clang++ -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wno-unused-parameter -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_CPP_EXCEPTIONS \
  -I"$NAPI_DIR" -I"$NODE_INC" \
  "test/fuzz/fuzz_$NAME.cc" test/fuzz/fuzz_napi_stubs.cc src/native/engine/engine.cc src/native/engine/ssl-peers.cc \
  src/native/core/esp.cc src/native/core/ovpn.cc src/native/core/ovpn-tcp.cc src/native/core/offload.cc src/native/core/policy.cc \
  -lcrypto -o "$OUT/fuzz_$NAME"
echo "== fuzzing for ${SECS}s"
"$OUT/fuzz_$NAME" -artifact_prefix="$OUT/" -max_total_time="$SECS" -max_len="$MAXLEN" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 "$OUT/corpus"
