// libFuzzer harness around the policy stage (src/native/core/policy.cc): hostile packets into
// Inbound and Outbound against a fixed policy (two endpoints, one closed; ACLs for two origins; a
// small flow limit so exhaustion and expiry run), with time advancing per input and the policy
// swapped now and then (setPolicy cutting live flows). Built with -fsanitize=fuzzer,address,undefined
// by test/fuzz/run-policy.sh. Every packet lives in a heap buffer of exactly its length, so any read
// past it is an ASan report.
//
// Input: byte 0 selects
//   bit 7     direction: Outbound (the VPC side) or Inbound (a tunnel);
//   bits 5-6  origin: the whitelisted one, one with an ACL, one with an empty ACL, none (0);
//   bits 2-4  shape: 0-1 raw bytes; 2 raw with the destination set to endpoint 1; 3 a UDP header
//             template to endpoint 1 with fuzzed ports and payload; 4 TCP likewise with fuzzed flags;
//             5 an ICMP error quoting the fuzzed bytes, to endpoint 1; 6 a reply template from the
//             backend to a NAT port; 7 the bytes to the closed endpoint;
//   bit 1     swap the policy first (alternates between two policies that differ in what survives);
//   bit 0     run Expire after the packet.
// Checked after a PASS: the length-preserving rewrite kept a valid IPv4 header checksum valid, and
// a valid TCP/UDP checksum of a template valid.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../src/native/core/bytes.h"
#include "../../src/native/core/policy.h"

using namespace vpcgw;

namespace {

constexpr uint32_t kEp1 = 0x0a02640a;      // 10.2.100.10
constexpr uint32_t kEp2 = 0x0a02640b;      // 10.2.100.11 (closed)
constexpr uint32_t kBackend = 0x0a03000a;  // 10.3.0.10
constexpr uint32_t kClient = 0x0a010005;   // 10.1.0.5
constexpr uint32_t kOrigins[4] = {7, 20, 21, 0};

policy::Config MakePolicy(bool variant) {
  policy::Config c;
  policy::EndpointRule e;
  e.id = 1;
  e.address = kEp1;
  e.open = true;
  e.ports.push_back({policy::kProtoTcp, 80, kBackend, 8080});
  e.ports.push_back({policy::kProtoUdp, 53, kBackend, variant ? uint16_t(5354) : uint16_t(5353)});
  e.origins = {7};
  if (!variant) e.sources.push_back({0x0a090000, 16});
  c.endpoints.push_back(e);
  policy::EndpointRule e2 = e;
  e2.id = 2;
  e2.address = kEp2;
  e2.open = variant;
  c.endpoints.push_back(e2);
  policy::OriginAcl a;
  a.origin = 20;
  policy::AclRule r;
  r.family = 4;
  r.addr[0] = 10;
  r.addr[1] = 2;
  r.len = 16;
  a.rules.push_back(r);
  policy::AclRule r2;
  r2.family = 4;
  r2.addr[0] = 10;
  r2.addr[1] = 4;
  r2.len = 16;
  r2.protocol = policy::kProtoTcp;
  r2.portLo = 443;
  r2.portHi = 443;
  a.rules.push_back(r2);
  policy::AclRule r6;
  r6.family = 6;
  r6.addr[0] = 0x20;
  r6.addr[1] = 0x01;
  r6.len = 16;
  a.rules.push_back(r6);
  c.acls.push_back(a);
  policy::OriginAcl empty;
  empty.origin = 21;
  c.acls.push_back(empty);
  c.limits.maxFlows = 64;
  c.limits.udpMs = 50;
  c.limits.tcpTransitoryMs = 30;
  c.limits.tcpEstablishedMs = 200;
  return c;
}

policy::Stage* gStage = nullptr;
bool gVariant = false;
double gNow = 1000;

bool Ip4HeaderValid(const uint8_t* p, size_t len) {
  if (len < 20 || (p[0] >> 4) != 4) return false;
  size_t ihl = size_t(p[0] & 15) * 4;
  if (ihl < 20 || ihl > len) return false;
  return policy::CsumFold(policy::CsumAdd(p, ihl, 0)) == 0xffff;
}

uint32_t Pseudo(const uint8_t* p, uint8_t proto, size_t l4len) {
  return policy::CsumAdd(p + 12, 8, 0) + proto + uint32_t(l4len);
}

bool L4Valid(const uint8_t* p, size_t len) {
  size_t ihl = size_t(p[0] & 15) * 4;
  uint8_t proto = p[9];
  size_t l4len = len - ihl;
  if (proto == policy::kProtoUdp && Rd16(p + ihl + 6) == 0) return true;
  return policy::CsumFold(policy::CsumAdd(p + ihl, l4len, Pseudo(p, proto, l4len))) == 0xffff;
}

void FixIpCsum(uint8_t* p) {
  Wr16(p + 10, 0);
  Wr16(p + 10, uint16_t(~policy::CsumFold(policy::CsumAdd(p, 20, 0))));
}

void FixL4Csum(uint8_t* p, size_t len) {
  uint8_t proto = p[9];
  size_t l4len = len - 20;
  size_t co = proto == policy::kProtoTcp ? 16 : 6;
  Wr16(p + 20 + co, 0);
  uint16_t c = uint16_t(~policy::CsumFold(policy::CsumAdd(p + 20, l4len, Pseudo(p, proto, l4len))));
  if (proto == policy::kProtoUdp && c == 0) c = 0xffff;
  Wr16(p + 20 + co, c);
}

// A 20-byte IPv4 header + `l4` bytes with valid checksums.
std::vector<uint8_t> Template(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t* l4, size_t l4len) {
  std::vector<uint8_t> p(20 + l4len);
  p[0] = 0x45;
  Wr16(p.data() + 2, uint16_t(p.size()));
  p[8] = 64;
  p[9] = proto;
  Wr32(p.data() + 12, src);
  Wr32(p.data() + 16, dst);
  if (l4len) memcpy(p.data() + 20, l4, l4len);
  FixIpCsum(p.data());
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!gStage) {
    gStage = new policy::Stage();
    gStage->SetPolicy(MakePolicy(false), gNow);
  }
  if (size < 1 || size > 4096) return 0;
  uint8_t sel = data[0];
  const uint8_t* in = data + 1;
  size_t n = size - 1;
  bool outbound = sel & 0x80;
  uint32_t origin = kOrigins[(sel >> 5) & 3];
  int shape = (sel >> 2) & 7;
  gNow += 7;
  if (sel & 2) {
    gVariant = !gVariant;
    gStage->SetPolicy(MakePolicy(gVariant), gNow);
  }

  std::vector<uint8_t> pkt(in, in + n);
  bool l4Template = false;
  switch (shape) {
    case 2:
      if (pkt.size() >= 20) Wr32(pkt.data() + 16, kEp1);
      break;
    case 3:
    case 4: {
      bool tcp = shape == 4;
      size_t hl = tcp ? 20 : 8;
      std::vector<uint8_t> l4(hl + (n > 6 ? n - 6 : 0));
      for (size_t i = 0; i < std::min<size_t>(n, 5); i++) {  // ports, then the TCP flags
        if (i < 4)
          l4[i] = in[i];
        else if (tcp)
          l4[13] = in[i];
      }
      if (!tcp) Wr16(l4.data() + 4, uint16_t(l4.size()));
      if (tcp) l4[12] = 0x50;
      if (n > 6) memcpy(l4.data() + hl, in + 6, n - 6);
      if (outbound) {
        pkt = Template(kBackend, kEp1, tcp ? policy::kProtoTcp : policy::kProtoUdp, l4.data(), l4.size());
      } else {
        if (!tcp) Wr16(l4.data() + 2, 53);
        pkt = Template(kClient, kEp1, tcp ? policy::kProtoTcp : policy::kProtoUdp, l4.data(), l4.size());
      }
      FixL4Csum(pkt.data(), pkt.size());
      l4Template = true;
      break;
    }
    case 5: {
      std::vector<uint8_t> icmp(8 + n);
      icmp[0] = 3;
      if (n) memcpy(icmp.data() + 8, in, n);
      Wr16(icmp.data() + 2, uint16_t(~policy::CsumFold(policy::CsumAdd(icmp.data(), icmp.size(), 0))));
      pkt = outbound ? Template(kBackend, kEp1, policy::kProtoIcmp, icmp.data(), icmp.size())
                     : Template(kClient, kEp1, policy::kProtoIcmp, icmp.data(), icmp.size());
      break;
    }
    case 6: {
      uint8_t l4[8] = {0x15, 0xe9, 0x04, 0x00, 0, 8, 0, 0};  // 5353 -> 1024 + fuzz
      if (n >= 2) {
        l4[2] = uint8_t(0x04 | (in[0] & 0x03));
        l4[3] = in[1];
      }
      pkt = Template(kBackend, kEp1, policy::kProtoUdp, l4, 8);
      FixL4Csum(pkt.data(), pkt.size());
      l4Template = true;
      break;
    }
    case 7:
      if (pkt.size() >= 20) Wr32(pkt.data() + 16, kEp2);
      break;
    default:
      break;
  }

  // exactly-sized heap copy: ASan sees any read or write past the packet
  size_t len = pkt.size();
  uint8_t* buf = static_cast<uint8_t*>(malloc(len ? len : 1));
  if (len) memcpy(buf, pkt.data(), len);
  bool ipValid = Ip4HeaderValid(buf, len);
  int v = outbound ? gStage->Outbound(buf, len, gNow) : gStage->Inbound(buf, len, origin, gNow);
  if (v < 0 || v > policy::kDropCount) __builtin_trap();
  if (v == policy::kPass) {
    if (ipValid && !Ip4HeaderValid(buf, len)) __builtin_trap();
    if (l4Template && buf[9] != policy::kProtoIcmp && !L4Valid(buf, len)) __builtin_trap();
  }
  free(buf);
  if (sel & 1) gStage->Expire(gNow, 16);
  if (gStage->flows() > 64) __builtin_trap();  // maxFlows holds
  return 0;
}
