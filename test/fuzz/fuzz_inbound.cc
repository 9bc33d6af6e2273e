// libFuzzer harness around the data-plane engine's inbound demux (src/native/engine/engine.cc,
// Inbound and InboundSsl) with ESP SAs, SSL VPN sessions and a policy (an endpoint, an ACL)
// installed, driven through the engine's test seam (Engine::DemuxForTest: no sockets, TUN or JS
// callbacks). Built with -fsanitize=fuzzer,address,undefined by test/fuzz/run-inbound.sh, linked
// with stub N-API and libuv symbols (fuzz_napi_stubs.cc) since the engine never calls into JS here.
//
// Input: byte 0 selects
//   bit 7     the socket: an SSL VPN socket (OpenVPN demux) or the ESP-in-UDP / IKE socket;
//   bits 5-6  the sender: session 1's endpoint, session 2's endpoint, another port, another family;
//   bit 4     the local (destination) address family: IPv4 or IPv6 (the IP_PKTINFO the bind reads);
//   bits 2-3  the shape: 0 raw bytes; 1 the bytes as the payload of a valid ESP packet (SA 1);
//             2 the bytes as the plaintext of a valid P_DATA_V2 of session 1; 3 of session 2;
//   bits 0-1  a prefix for raw bytes: none, the non-ESP marker, SPI 1, SPI 2 (so the SA lookup,
//             IKE and keepalive branches are all reached without guessing 4 bytes).
// The rest is the datagram (or the payload to seal).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#define VPCGW_FUZZ_ENGINE
#include "harness.h"

using namespace vpcgw;

namespace {

constexpr uint32_t kSpi1 = 0x00001001, kSpi2 = 0x00002002;
constexpr uint32_t kPeer1 = 1, kPeer2 = 0x000203;
constexpr uint32_t kMaxPacket = 1500;

fuzz::EngineBuffers gBufs(64, 64 * 1024, kMaxPacket);
Engine* gEngine = nullptr;
int gEspBind = -1, gSslBind = -1;
esp::Sa* gSealer = nullptr;  // outbound twin of SA 1 (same keys): seals valid ESP
ovpn::Session* gClient[2] = {nullptr, nullptr};  // client twins of sessions 1 and 2
fuzz::OvpnKeys gKeys;

esp::Prefix Any4() {
  esp::Prefix p;
  p.family = 4;
  p.len = 0;
  return p;
}

esp::Sa* MakeSa(uint32_t spi, bool inbound) {
  uint8_t key[20];
  for (size_t i = 0; i < sizeof key; i++) key[i] = uint8_t(31 + i * 7 + spi);
  esp::SaConfig c;
  c.inbound = inbound;
  c.spi = spi;
  c.encr = esp::kEncrAesGcm16;
  c.encrKeyBits = 128;
  c.integ = esp::kAuthNone;
  c.encrKey = key;
  c.encrKeyLen = sizeof key;
  c.integKey = key;
  c.integKeyLen = 0;
  c.replayWindow = 64;
  c.localTs = {Any4()};
  c.remoteTs = {Any4()};
  c.hardPackets = 1u << 30;
  const char* err = nullptr;
  esp::Sa* sa = esp::Sa::Create(c, &err);
  if (!sa) __builtin_trap();
  return sa;
}

ovpn::Session* MakeSession(uint32_t peerId, bool server) {
  return fuzz::MakeOvpnSession(gKeys, peerId, ovpn::kAes128Gcm, server);
}

sockaddr_storage V4(const char* a, uint16_t port) {
  sockaddr_storage ss{};
  sockaddr_in* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  inet_pton(AF_INET, a, &s->sin_addr);
  return ss;
}

void InstallPeer(uint32_t peerId, const char* addr, uint16_t port, const char* vaddr) {
  auto p = std::make_unique<SslPeer>();
  p->s.reset(MakeSession(peerId, true));
  uint8_t a[16] = {0};
  inet_pton(AF_INET, addr, a);
  if (!gEngine->SetPeerRemote(p.get(), gSslBind, 4, a, port)) __builtin_trap();
  p->hasVaddr = true;
  inet_pton(AF_INET, vaddr, p->vaddr);
  inet_pton(AF_INET, "10.8.0.0", p->clientNet);
  p->clientLen = 24;
  inet_pton(AF_INET, "10.8.0.1", p->serverAddr);
  gEngine->InstallSslPeer(peerId, std::move(p));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gKeys.Fill();
  gEngine = fuzz::NewEngine(&gBufs, kMaxPacket);
  gEspBind = gEngine->AddTestBind(false, AF_INET);
  gSslBind = gEngine->AddTestBind(true, AF_INET);
  for (uint32_t spi : {kSpi1, kSpi2}) {
    auto out = std::make_unique<OutSa>();
    out->sa.reset(MakeSa(spi, true));
    out->sa->bindIndex = gEspBind;
    out->origin = spi == kSpi1 ? 7 : 0;  // the policy stage below sees SA 1's packets as origin 7
    gEngine->InstallSa(std::move(out));
  }
  gSealer = MakeSa(kSpi1, false);
  InstallPeer(kPeer1, "192.0.2.10", 50001, "10.8.0.2");
  InstallPeer(kPeer2, "192.0.2.11", 50002, "10.8.0.3");
  gEngine->sslPeers().Find(kPeer2)->origin = 21;
  // the policy stage: an endpoint (origin 7 and the SSL pool whitelisted) and an empty ACL for
  // origin 21, so decrypted packets run through translation and ACL drops too
  policy::Config pc;
  policy::EndpointRule ep;
  ep.id = 1;
  ep.address = 0x0a02640a;  // 10.2.100.10
  ep.open = true;
  ep.ports.push_back({policy::kProtoUdp, 53, 0x0a03000a, 5353});
  ep.ports.push_back({policy::kProtoTcp, 80, 0x0a03000a, 8080});
  ep.origins = {7};
  ep.sources.push_back({0x0a080000, 24});
  pc.endpoints.push_back(ep);
  policy::OriginAcl deny;
  deny.origin = 21;
  pc.acls.push_back(deny);
  pc.limits.maxFlows = 256;
  gEngine->SetPolicy(pc);
  gClient[0] = MakeSession(kPeer1, false);
  gClient[1] = MakeSession(kPeer2, false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  const uint8_t* d = data + 1;
  size_t n = size - 1;
  if (n > 4 * kMaxPacket) return 0;
  bool ssl = sel & 0x80;
  int sender = (sel >> 5) & 3;
  bool local6 = sel & 0x10;
  int shape = (sel >> 2) & 3;
  int prefix = sel & 3;

  sockaddr_storage from;
  if (sender == 0) {
    from = V4("192.0.2.10", 50001);
  } else if (sender == 1) {
    from = V4("192.0.2.11", 50002);
  } else if (sender == 2) {
    from = V4("192.0.2.10", 40000);
  } else {
    from = sockaddr_storage{};
    sockaddr_in6* s6 = reinterpret_cast<sockaddr_in6*>(&from);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(4500);
    inet_pton(AF_INET6, "2001:db8::10", &s6->sin6_addr);
  }
  LocalAddr local;
  local.family = local6 ? 6 : 4;
  if (local6)
    inet_pton(AF_INET6, "2001:db8::2", local.addr);
  else
    inet_pton(AF_INET, "198.51.100.2", local.addr);

  std::vector<uint8_t> pkt;
  if (shape == 0) {
    static const uint8_t kPrefixes[4][4] = {
        {0, 0, 0, 0}, {0, 0, 0, 0}, {0x00, 0x00, 0x10, 0x01}, {0x00, 0x00, 0x20, 0x02}};
    if (prefix != 0) pkt.assign(kPrefixes[prefix], kPrefixes[prefix] + 4);
    pkt.insert(pkt.end(), d, d + n);
  } else if (shape == 1) {
    if (n > kMaxPacket) return 0;
    // a valid ESP packet of SA 1 around the bytes (an IP header check follows in decap)
    std::vector<uint8_t> buf(kHeadroom + n + kTailroom + 64);
    memcpy(buf.data() + kHeadroom, d, n);
    esp::Span span;
    if (gSealer->Encap(buf.data(), kHeadroom, n, buf.size(), &span) != esp::kNone) return 0;
    pkt.assign(buf.begin() + long(span.off), buf.begin() + long(span.off + span.len));
  } else {
    if (n > kMaxPacket) return 0;
    // a valid P_DATA_V2 of session 1 or 2 around the bytes (inner IP, ping, OCC...)
    std::vector<uint8_t> buf(kHeadroom + n + kTailroom + 64);
    memcpy(buf.data() + kHeadroom, d, n);
    ovpn::Span span;
    if (gClient[shape - 2]->Encrypt(buf.data(), kHeadroom, n, buf.size(), 0, false, &span) != ovpn::kIp) return 0;
    pkt.assign(buf.begin() + long(span.off), buf.begin() + long(span.off + span.len));
  }
  gEngine->DemuxForTest(ssl ? gSslBind : gEspBind, pkt.data(), pkt.size(), from, local);
  return 0;
}
