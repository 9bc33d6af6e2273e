#!/bin/sh
# Fuzzes test/fuzz/fuzz_tcp_engine.cc (the engine's OpenVPN-over-TCP entry, SslTcpChunk) for a
# bounded time. Usage: test/fuzz/run-tcp-engine.sh [seconds=60]. Built and run by
# run-engine-target.sh.
exec sh "$(dirname "$0")/run-engine-target.sh" tcp_engine "${1:-60}" 8192
