// libFuzzer harness around the data-plane engine's OpenVPN-over-TCP entry (Engine::SslTcpChunk in
// src/native/engine/engine.cc, with the stream parser of src/native/core/ovpn-tcp.cc): a stream
// of raw bytes, control packets and correctly sealed P_DATA_V2 packets of the bound session, cut
// into chunks at fuzzer-chosen places, fed with a small list (so parsing resumes mid-chunk), the
// TUN queue written out after every chunk or only at the end. The "TUN" is /dev/null with virtio
// headers and GRO on, so every queued packet is read (coalesced and written) under ASan: a queued
// packet whose chunk or assembly buffer was reused or freed is a crash. Built with
// -fsanitize=fuzzer,address,undefined by test/fuzz/run-tcp-engine.sh, linked with the stub N-API
// and libuv symbols of fuzz_napi_stubs.cc (nothing here calls into JS).
//
// Input: byte 0 = list capacity (bits 0-2, + 1) | flush after every chunk (bit 7); bytes 1..k:
// chunk sizes (until a zero byte); then records: type (0 raw bytes, 1 a control packet, 2 a data
// packet of the session), length (1 byte), that many bytes.
#include <arpa/inet.h>
#include <fcntl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#define VPCGW_FUZZ_ENGINE
#include "harness.h"

using namespace vpcgw;

namespace {

constexpr uint32_t kPeer = 0x000102;
constexpr uint32_t kMaxPacket = 1500;

fuzz::EngineBuffers gBufs(16, 4096, kMaxPacket);
Engine* gEngine = nullptr;
ovpn::Session* gClient = nullptr;
fuzz::OvpnKeys gKeys;

ovpn::Session* MakeSession(bool server) { return fuzz::MakeOvpnSession(gKeys, kPeer, ovpn::kAes128Gcm, server); }

void Frame(std::vector<uint8_t>* s, const uint8_t* p, size_t n) {
  s->push_back(uint8_t(n >> 8));
  s->push_back(uint8_t(n));
  s->insert(s->end(), p, p + n);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gKeys.Fill();
  gEngine = fuzz::NewEngine(&gBufs, kMaxPacket);
  int fd = open("/dev/null", O_WRONLY);
  if (fd < 0) __builtin_trap();
  gEngine->AttachTun(fd, true, true);
  gEngine->SetOptions(false, true, 0);
  auto p = std::make_unique<SslPeer>();
  p->s.reset(MakeSession(true));
  p->hasVaddr = true;
  inet_pton(AF_INET, "10.8.0.2", p->vaddr);
  inet_pton(AF_INET, "10.8.0.0", p->clientNet);
  p->clientLen = 24;
  inet_pton(AF_INET, "10.8.0.1", p->serverAddr);
  gEngine->InstallSslPeer(kPeer, std::move(p));
  gClient = MakeSession(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint32_t listCap = (data[0] & 7) + 1;
  bool flushEach = data[0] & 0x80;
  size_t p = 1;
  std::vector<size_t> cuts;
  while (p < size && data[p] != 0 && cuts.size() < 64) cuts.push_back(data[p++]);
  if (p < size) p++;

  // the stream
  std::vector<uint8_t> s;
  while (p + 2 <= size) {
    int type = data[p] % 3;
    size_t len = data[p + 1];
    p += 2;
    if (len > size - p) len = size - p;
    const uint8_t* b = data + p;
    p += len;
    if (type == 0) {
      s.insert(s.end(), b, b + len);
    } else if (type == 1) {
      std::vector<uint8_t> c(b, b + len);
      c.insert(c.begin(), uint8_t(4 << 3));  // P_CONTROL_V1
      Frame(&s, c.data(), c.size());
    } else {
      // an IPv4 packet from the client's address (to the VPC or, by the first byte, another client)
      std::vector<uint8_t> ip(20, 0);
      ip[0] = 0x45;
      ip[2] = uint8_t((20 + len) >> 8);
      ip[3] = uint8_t(20 + len);
      ip[8] = 64;
      ip[9] = 6;
      inet_pton(AF_INET, "10.8.0.2", &ip[12]);
      inet_pton(AF_INET, len > 0 && (b[0] & 1) ? "10.8.0.3" : "10.2.0.10", &ip[16]);
      ip.insert(ip.end(), b, b + len);
      std::vector<uint8_t> buf(kHeadroom + ip.size() + kTailroom + 64);
      memcpy(buf.data() + kHeadroom, ip.data(), ip.size());
      ovpn::Span span;
      if (gClient->Encrypt(buf.data(), kHeadroom, ip.size(), buf.size(), 0, false, &span) != ovpn::kIp) return 0;
      Frame(&s, buf.data() + span.off, span.len);
    }
  }

  ovpn::TcpDeframer d(kMaxPacket + 200);
  bool asmQueued = false;
  std::vector<uint32_t> list(kTcpListHead + listCap * kTcpItemStride);
  std::vector<uint8_t> spill(ovpn::kTcpMaxFrame);
  // chunks stay alive until the TUN queue that may point into them is written out (as JS keeps them)
  std::vector<std::unique_ptr<std::vector<uint8_t>>> held;
  size_t at = 0, ci = 0;
  bool broken = false;
  while (at < s.size() && !broken) {
    size_t len = s.size() - at;
    if (ci < cuts.size()) {
      size_t c = cuts[ci++] % (len + 1);
      if (c > 0) len = c;
    }
    held.push_back(std::make_unique<std::vector<uint8_t>>(s.begin() + long(at), s.begin() + long(at + len)));
    std::vector<uint8_t>& chunk = *held.back();
    size_t pos = 0;
    while (pos < chunk.size()) {
      int n = gEngine->SslTcpChunk(&d, kPeer, chunk.data(), chunk.size(), &pos, list.data(), listCap, spill.data(),
                                   spill.size(), &asmQueued);
      if (n < 0 || uint32_t(n) > listCap || list[0] != pos || pos > chunk.size()) __builtin_trap();
      for (int i = 0; i < n; i++) {
        const uint32_t* m = &list[kTcpListHead + size_t(i) * kTcpItemStride];
        size_t lim = (m[2] & kTcpItemSpill) ? spill.size() : chunk.size();
        if (m[1] == 0 || size_t(m[0]) + m[1] > lim) __builtin_trap();
      }
      if (list[1] == 1) {
        broken = true;
        break;
      }
    }
    if (flushEach) {
      gEngine->FlushSslTcp();
      held.clear();
    }
    at += len;
  }
  gEngine->FlushSslTcp();
  return 0;
}
