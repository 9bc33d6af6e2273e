// Shared pieces of the libFuzzer harnesses: a pair of mirrored OpenVPN data-channel key sets (a
// server session and its client twin decrypt each other), and, for the engine harnesses, the JS
// buffers the data-plane engine writes into, pinned to plain vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../src/native/core/ovpn.h"

namespace vpcgw {
namespace fuzz {

// Fixed keys (the fuzzer explores packets, not keys); Fill() once before the first session.
struct OvpnKeys {
  uint8_t a[64], b[64], ivA[8], ivB[8];
  void Fill() {
    for (size_t i = 0; i < 64; i++) a[i] = uint8_t(i * 3 + 1), b[i] = uint8_t(i * 5 + 2);
    for (size_t i = 0; i < 8; i++) ivA[i] = uint8_t(i + 9), ivB[i] = uint8_t(i + 17);
  }
};

// A session with key-id 0: `server` encrypts with a/ivA and decrypts b/ivB, the client the reverse.
inline ovpn::Session* MakeOvpnSession(const OvpnKeys& k, uint32_t peerId, int cipher, bool server) {
  ovpn::Session* s = new ovpn::Session(peerId);
  ovpn::KeyConfig c;
  c.keyId = 0;
  c.cipher = cipher;
  c.encKey = server ? k.a : k.b;
  c.encKeyLen = 64;
  c.encIv = server ? k.ivA : k.ivB;
  c.decKey = server ? k.b : k.a;
  c.decKeyLen = 64;
  c.decIv = server ? k.ivB : k.ivA;
  const char* err = nullptr;
  if (!s->InstallKey(c, &err)) __builtin_trap();
  return s;
}

}  // namespace fuzz
}  // namespace vpcgw

#ifdef VPCGW_FUZZ_ENGINE
#include "../../src/native/engine/engine.h"

namespace vpcgw {
namespace fuzz {

// The JS buffers of one engine (entries: how many control / SSL items a batch may hand to JS).
struct EngineBuffers {
  explicit EngineBuffers(size_t entries, size_t bytes, size_t maxPacket)
      : stats(kStatCount), ctlBuf(bytes), ctlAddr(entries * kCtlAddrStride), sinkBuf(16 * maxPacket), sslBuf(bytes),
        sslAddr(entries * 16), ctlMeta(entries * kCtlStride), sinkMeta(16 * kSinkStride), events(entries * kEventStride),
        sslMeta(entries * kSslStride) {}
  std::vector<double> stats;
  std::vector<uint8_t> ctlBuf, ctlAddr, sinkBuf, sslBuf, sslAddr;
  std::vector<uint32_t> ctlMeta, sinkMeta, events, sslMeta;
};

template <typename T>
void Pin(Pinned<T>* p, std::vector<T>& v) {
  p->ptr = v.data();
  p->count = v.size();
}

// An engine with no JS object behind it, its buffers pinned to `b`, configured for maxPacket.
inline Engine* NewEngine(EngineBuffers* b, uint32_t maxPacket) {
  Engine* e = new Engine(nullptr);
  JsBuffers& js = e->js();
  Pin(&js.stats, b->stats);
  Pin(&js.ctlBuf, b->ctlBuf);
  Pin(&js.ctlMeta, b->ctlMeta);
  Pin(&js.ctlAddr, b->ctlAddr);
  Pin(&js.sinkBuf, b->sinkBuf);
  Pin(&js.sinkMeta, b->sinkMeta);
  Pin(&js.events, b->events);
  Pin(&js.sslBuf, b->sslBuf);
  Pin(&js.sslMeta, b->sslMeta);
  Pin(&js.sslAddr, b->sslAddr);
  if (!e->Configure(maxPacket)) __builtin_trap();
  return e;
}

}  // namespace fuzz
}  // namespace vpcgw
#endif
