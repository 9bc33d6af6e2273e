// The policy stage (policy.h): ACLs by origin and VPC endpoint NAT with the semantics of
// src/vpcep/policy.ts. Every header field is bounds-checked before it is read (the inbound side
// parses what a tunnel peer sent); checksums are updated incrementally (RFC 1624) and never
// recomputed, so a packet with a wrong checksum stays wrong for its receiver to drop.
#include "policy.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "bytes.h"

namespace vpcgw {
namespace policy {

namespace {

// TCP flags (RFC 9293 §3.1)
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;

// ICMP error types that quote the offending datagram (RFC 792): destination unreachable, time
// exceeded, parameter problem.
inline bool IsIcmpError(uint8_t type) { return type == 3 || type == 11 || type == 12; }

constexpr size_t kIp4MinHeader = 20;
constexpr size_t kIp6Header = 40;
constexpr size_t kIcmpHeader = 8;
constexpr size_t kTcpMinHeader = 20;
constexpr size_t kUdpHeader = 8;

// The header length of the IPv4 packet p whose IHL and total length fit in len (the total length
// stored in *tot); 0 for a malformed header.
inline size_t Ip4HeaderLen(const uint8_t* p, size_t len, size_t* tot) {
  size_t ihl = size_t(p[0] & 15) * 4;
  *tot = Rd16(p + 2);
  return ihl >= kIp4MinHeader && *tot >= ihl && *tot <= len ? ihl : 0;
}

// Where the TCP or UDP header of p starts when the packet carries its ports: a first fragment (RFC
// 791: later ones carry none) whose fixed header fits in the total length; nullptr otherwise.
inline uint8_t* PortsHeader(uint8_t* p, size_t ihl, size_t tot, uint8_t proto, bool later) {
  if (later || tot - ihl < (proto == kProtoTcp ? kTcpMinHeader : kUdpHeader)) return nullptr;
  return p + ihl;
}
constexpr uint16_t kFragOffsetMask = 0x1fff;
constexpr size_t kIcmpQuotedL4 = 8;  // RFC 792: an error quotes at least 64 bits of the datagram's data
// IPv6 extension headers walked to reach the upper-layer protocol (RFC 8200 §4)
constexpr uint8_t kIp6HopByHop = 0;
constexpr uint8_t kIp6Routing = 43;
constexpr uint8_t kIp6Fragment = 44;
constexpr uint8_t kIp6Ah = 51;
constexpr uint8_t kIp6DestOpts = 60;
constexpr int kIp6MaxExtHeaders = 8;  // implementation choice: then the ports count as unknown

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Delta collects the ~m + m' terms of every changed
// 16-bit word; Apply folds them into a checksum.
struct Delta {
  uint32_t s = 0;
  void Word(uint16_t o, uint16_t n) { s += uint16_t(~o) + uint32_t(n); }
  void Dword(uint32_t o, uint32_t n) {
    Word(uint16_t(o >> 16), uint16_t(n >> 16));
    Word(uint16_t(o), uint16_t(n));
  }
};

inline uint16_t Apply(uint16_t hc, uint32_t s) {
  uint32_t x = uint32_t(uint16_t(~hc)) + s;
  x = (x & 0xffff) + (x >> 16);
  x = (x & 0xffff) + (x >> 16);
  return uint16_t(~x);
}

// The transport checksum field's offset in a TCP or UDP header.
inline size_t L4CsumOffset(uint8_t proto) { return proto == kProtoTcp ? 16 : 6; }

// Rewrites an IPv4 packet's addresses and TCP/UDP ports, updating the IP header checksum and the
// transport checksum (its pseudo-header covers the addresses). A UDP checksum of 0 ("none",
// RFC 768) stays 0, and a computed 0 is sent as 0xffff.
inline void Translate(uint8_t* ip, uint8_t* l4, uint8_t proto, uint32_t src, uint16_t sport, uint32_t dst,
                      uint16_t dport) {
  Delta a;
  a.Dword(Rd32(ip + 12), src);
  a.Dword(Rd32(ip + 16), dst);
  Wr32(ip + 12, src);
  Wr32(ip + 16, dst);
  Wr16(ip + 10, Apply(Rd16(ip + 10), a.s));
  Delta t = a;
  t.Word(Rd16(l4), sport);
  t.Word(Rd16(l4 + 2), dport);
  Wr16(l4, sport);
  Wr16(l4 + 2, dport);
  uint8_t* c = l4 + L4CsumOffset(proto);
  uint16_t old = Rd16(c);
  if (proto == kProtoUdp && old == 0) return;
  uint16_t n = Apply(old, t.s);
  if (proto == kProtoUdp && n == 0) n = 0xffff;
  Wr16(c, n);
}

// Rewrites only the addresses of an IPv4 header (its checksum too): the outer header of an ICMP
// error, whose checksum has no pseudo-header.
inline void TranslateAddrs(uint8_t* ip, uint32_t src, uint32_t dst) {
  Delta a;
  a.Dword(Rd32(ip + 12), src);
  a.Dword(Rd32(ip + 16), dst);
  Wr32(ip + 12, src);
  Wr32(ip + 16, dst);
  Wr16(ip + 10, Apply(Rd16(ip + 10), a.s));
}

// Rewrites the datagram an ICMP error quotes (RFC 792: its IP header and at least the first 8
// bytes of its payload; RFC 1812 §4.3.2.3 allows more): addresses, ports, the quoted IP checksum,
// the quoted transport checksum when the quote includes it, and the ICMP checksum over all of it.
// `q` is the quoted IP header at icmp + 8, qihl its length, qavail the bytes quoted (qihl + 4 at
// least). Every field written is at an even offset from the ICMP header, so the ICMP checksum
// update works word by word.
inline void TranslateQuoted(uint8_t* icmp, uint8_t* q, size_t qihl, size_t qavail, uint8_t proto, uint32_t src,
                            uint16_t sport, uint32_t dst, uint16_t dport) {
  Delta ic;
  Delta a;
  a.Dword(Rd32(q + 12), src);
  a.Dword(Rd32(q + 16), dst);
  ic.s = a.s;
  Wr32(q + 12, src);
  Wr32(q + 16, dst);
  uint16_t oldIpc = Rd16(q + 10);
  uint16_t newIpc = Apply(oldIpc, a.s);
  Wr16(q + 10, newIpc);
  ic.Word(oldIpc, newIpc);
  uint8_t* l4 = q + qihl;
  Delta t = a;
  uint16_t os = Rd16(l4), od = Rd16(l4 + 2);
  t.Word(os, sport);
  t.Word(od, dport);
  ic.Word(os, sport);
  ic.Word(od, dport);
  Wr16(l4, sport);
  Wr16(l4 + 2, dport);
  size_t co = L4CsumOffset(proto);
  if (qavail - qihl >= co + 2) {
    uint16_t old = Rd16(l4 + co);
    if (!(proto == kProtoUdp && old == 0)) {
      uint16_t n = Apply(old, t.s);
      if (proto == kProtoUdp && n == 0) n = 0xffff;
      Wr16(l4 + co, n);
      ic.Word(old, n);
    }
  }
  Wr16(icmp + 2, Apply(Rd16(icmp + 2), ic.s));
}

bool InPrefix4(uint32_t a, const Prefix4& p) {
  uint32_t m = p.len == 0 ? 0 : (0xffffffffu << (32 - p.len));
  return (a & m) == (p.addr & m);
}

uint32_t TableSize(size_t n) {
  uint32_t s = 8;
  while (s < n * 2) s <<= 1;
  return s;
}

}  // namespace

uint32_t CsumAdd(const uint8_t* p, size_t len, uint32_t sum) {
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += Rd16(p + i);
  if (i < len) sum += uint32_t(p[i]) << 8;
  return sum;
}

uint16_t CsumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

Stage::Stage() {
  std::random_device rd;
  seed_ = (uint64_t(rd()) << 32) ^ rd();
}

// ------------------------------------------------------------------ configuration

void Stage::SetPolicy(const Config& c, double now) {
  // endpoints, keeping the counters of those that stay (by id)
  std::unordered_map<uint32_t, uint32_t> byId;
  for (size_t i = 0; i < eps_.size(); i++) byId[eps_[i].c.id] = uint32_t(i);
  std::vector<Endpoint> neps(c.endpoints.size());
  std::unordered_map<uint32_t, uint32_t> newById;
  for (size_t i = 0; i < c.endpoints.size(); i++) {
    const EndpointRule& r = c.endpoints[i];
    Endpoint& e = neps[i];
    e.address = r.address;
    e.open = r.open;
    e.ports = r.ports;
    e.origins = r.origins;
    std::sort(e.origins.begin(), e.origins.end());
    e.sources = r.sources;
    e.natBits[0].assign(65536 / 64, 0);
    e.natBits[1].assign(65536 / 64, 0);
    auto old = byId.find(r.id);
    if (old != byId.end()) {  // counters and NAT port cursors follow the endpoint id
      e.c = eps_[old->second].c;
      e.cursor[0] = eps_[old->second].cursor[0];
      e.cursor[1] = eps_[old->second].cursor[1];
    }
    e.c.id = r.id;
    e.c.flows = 0;
    newById.emplace(r.id, uint32_t(i));
  }

  // the flows that survive, in LRU order per class
  std::vector<Flow> keep;
  for (int cls = 0; cls < kClassCount; cls++) {
    for (uint32_t i = head_[cls]; i != kNil; i = flows_[i].next) {
      Flow f = flows_[i];
      auto it = newById.find(eps_[f.epIndex].c.id);
      if (it == newById.end()) continue;
      const Endpoint& ne = neps[it->second];
      if (!ne.open || ne.address != f.ep || !Admitted(ne, f.origin, f.client)) continue;
      bool mapped = false;
      for (const PortMap& m : ne.ports)
        if (m.protocol == f.proto && m.servicePort == f.servicePort && m.backendAddr == f.backend &&
            m.backendPort == f.backendPort)
          mapped = true;
      if (!mapped) continue;
      f.epIndex = it->second;
      keep.push_back(f);
    }
  }

  eps_ = std::move(neps);
  epTable_.assign(TableSize(eps_.size()), 0);
  for (size_t i = 0; i < eps_.size(); i++) {
    uint32_t mask = uint32_t(epTable_.size() - 1);
    uint32_t s = uint32_t(Mix(eps_[i].address ^ seed_)) & mask;
    bool dup = false;
    while (epTable_[s] != 0) {
      if (eps_[epTable_[s] - 1].address == eps_[i].address) dup = true;  // the first one wins
      s = (s + 1) & mask;
    }
    if (!dup) epTable_[s] = uint32_t(i + 1);
  }

  acls_.clear();
  aclTable_.assign(8, 0);  // the old table indexes the old ACLs: FindAcl below must not see it
  for (const OriginAcl& a : c.acls) {
    if (a.origin == 0 || FindAcl(a.origin) >= 0) continue;  // origin 0 has no ACL (policy.ts)
    Acl x;
    x.origin = a.origin;
    for (const AclRule& r : a.rules) {
      Rule c{};
      c.family = r.family;
      c.protocol = r.protocol;
      c.ports = (r.protocol == kProtoTcp || r.protocol == kProtoUdp) && !(r.portLo == 0 && r.portHi == 65535);
      c.portLo = r.portLo;
      c.portHi = r.portHi;
      for (int w = 0; w < (r.family == 4 ? 1 : 4); w++) {
        int bits = int(r.len) - 32 * w;
        c.mask[w] = bits <= 0 ? 0 : bits >= 32 ? 0xffffffffu : (0xffffffffu << (32 - bits));
        c.addr[w] = Rd32(r.addr + 4 * w) & c.mask[w];
      }
      x.rules.push_back(c);
    }
    x.denied = &aclDenied_[a.origin];
    acls_.push_back(std::move(x));
    aclTable_.assign(TableSize(acls_.size()), 0);  // rebuilt as it grows (configuration time only)
    for (size_t i = 0; i < acls_.size(); i++) {
      uint32_t mask = uint32_t(aclTable_.size() - 1);
      uint32_t s = uint32_t(Mix(acls_[i].origin ^ seed_)) & mask;
      while (aclTable_[s] != 0) s = (s + 1) & mask;
      aclTable_[s] = uint32_t(i + 1);
    }
  }
  if (acls_.empty()) aclTable_.assign(8, 0);

  limits_ = c.limits;
  timeoutMs_[kUdp] = limits_.udpMs;
  timeoutMs_[kTcpTransitory] = limits_.tcpTransitoryMs;
  timeoutMs_[kTcpEstablished] = limits_.tcpEstablishedMs;

  // a smaller maxFlows keeps the most recently active flows that fit
  if (keep.size() > limits_.maxFlows) {
    std::vector<std::pair<double, size_t>> byLast(keep.size());
    for (size_t i = 0; i < keep.size(); i++) byLast[i] = {keep[i].last, i};
    std::sort(byLast.begin(), byLast.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<bool> fits(keep.size(), false);
    for (size_t i = 0; i < limits_.maxFlows; i++) fits[byLast[i].second] = true;
    std::vector<Flow> kept;
    for (size_t i = 0; i < keep.size(); i++)
      if (fits[i]) kept.push_back(keep[i]);
    keep.swap(kept);
  }
  Allocate(eps_.empty() ? 0 : std::min(limits_.maxFlows, kMaxFlows));
  for (const Flow& f : keep) {
    uint32_t idx = free_.back();
    free_.pop_back();
    flows_[idx] = f;
    TableInsert(fwd_, HashOf(f, true), idx);
    TableInsert(rev_, HashOf(f, false), idx);
    Append(idx);
    Endpoint& e = eps_[f.epIndex];
    e.natBits[f.proto == kProtoTcp ? 0 : 1][f.natPort >> 6] |= uint64_t(1) << (f.natPort & 63);
    e.c.flows++;
    liveFlows_++;
  }
  inboundActive_ = !eps_.empty() || !acls_.empty();
  (void)now;
}

void Stage::Allocate(uint32_t cap) {
  flows_.assign(cap, Flow{});
  free_.clear();
  free_.reserve(cap);
  for (uint32_t i = cap; i > 0; i--) free_.push_back(i - 1);
  uint32_t ts = cap == 0 ? 0 : TableSize(cap);
  fwd_.assign(ts, 0);
  rev_.assign(ts, 0);
  tableMask_ = ts == 0 ? 0 : ts - 1;
  liveFlows_ = 0;
  for (int i = 0; i < kClassCount; i++) head_[i] = tail_[i] = kNil;
}

// ------------------------------------------------------------------ lookups

// Linear probing in a table of (index + 1) entries, 0 ending a probe: the index whose item `is`
// accepts, or -1.
template <typename Is>
static int Probe(const std::vector<uint32_t>& table, uint32_t hash, Is is) {
  if (table.empty()) return -1;
  uint32_t mask = uint32_t(table.size() - 1);
  for (uint32_t s = hash & mask;; s = (s + 1) & mask) {
    uint32_t v = table[s];
    if (v == 0) return -1;
    if (is(v - 1)) return int(v - 1);
  }
}

int Stage::FindEndpoint(uint32_t addr) const {
  return Probe(epTable_, uint32_t(Mix(addr ^ seed_)), [&](uint32_t i) { return eps_[i].address == addr; });
}

int Stage::FindAcl(uint32_t origin) const {
  return Probe(aclTable_, uint32_t(Mix(origin ^ seed_)), [&](uint32_t i) { return acls_[i].origin == origin; });
}

bool Stage::Admitted(const Endpoint& e, uint32_t origin, uint32_t src) const {
  if (origin != 0 && std::binary_search(e.origins.begin(), e.origins.end(), origin)) return true;
  for (const Prefix4& p : e.sources)
    if (InPrefix4(src, p)) return true;
  return false;
}

uint64_t Stage::FwdHash(uint32_t origin, uint32_t client, uint16_t clientPort, uint32_t ep, uint16_t servicePort,
                        uint8_t proto) const {
  uint64_t a = (uint64_t(origin) << 32) | client;
  uint64_t b = (uint64_t(ep) << 32) | (uint64_t(clientPort) << 16) | servicePort;
  return Mix(Mix(a ^ seed_) ^ b ^ (uint64_t(proto) << 56));
}

uint64_t Stage::RevHash(uint32_t ep, uint8_t proto, uint16_t natPort) const {
  return Mix(((uint64_t(ep) << 32) | (uint64_t(proto) << 16) | natPort) ^ seed_);
}

uint64_t Stage::HashOf(const Flow& f, bool fwd) const {
  return fwd ? FwdHash(f.origin, f.client, f.clientPort, f.ep, f.servicePort, f.proto) : RevHash(f.ep, f.proto, f.natPort);
}

uint32_t Stage::FindFwd(uint32_t origin, uint32_t client, uint16_t clientPort, uint32_t ep, uint16_t servicePort,
                        uint8_t proto) const {
  if (fwd_.empty()) return kNil;
  uint32_t s = uint32_t(FwdHash(origin, client, clientPort, ep, servicePort, proto)) & tableMask_;
  for (;;) {
    uint32_t v = fwd_[s];
    if (v == 0) return kNil;
    const Flow& f = flows_[v - 1];
    if (f.client == client && f.clientPort == clientPort && f.servicePort == servicePort && f.origin == origin &&
        f.ep == ep && f.proto == proto)
      return v - 1;
    s = (s + 1) & tableMask_;
  }
}

uint32_t Stage::FindRev(uint32_t ep, uint8_t proto, uint16_t natPort) const {
  if (rev_.empty()) return kNil;
  uint32_t s = uint32_t(RevHash(ep, proto, natPort)) & tableMask_;
  for (;;) {
    uint32_t v = rev_[s];
    if (v == 0) return kNil;
    const Flow& f = flows_[v - 1];
    if (f.natPort == natPort && f.ep == ep && f.proto == proto) return v - 1;
    s = (s + 1) & tableMask_;
  }
}

// ------------------------------------------------------------------ flow table

void Stage::TableInsert(std::vector<uint32_t>& t, uint64_t h, uint32_t idx) {
  uint32_t s = uint32_t(h) & tableMask_;
  while (t[s] != 0) s = (s + 1) & tableMask_;
  t[s] = idx + 1;
}

// Linear probing deletion by backward shift (Knuth, TAOCP vol. 3, 6.4 Algorithm R): entries after
// the hole move back when their home slot allows, so lookups never need tombstones.
void Stage::TableErase(std::vector<uint32_t>& t, uint64_t h, uint32_t idx, bool fwd) {
  uint32_t i = uint32_t(h) & tableMask_;
  while (t[i] != idx + 1) {
    if (t[i] == 0) return;  // not there (cannot happen: every live flow is in both tables)
    i = (i + 1) & tableMask_;
  }
  for (;;) {
    t[i] = 0;
    uint32_t j = i;
    for (;;) {
      j = (j + 1) & tableMask_;
      if (t[j] == 0) return;
      uint32_t k = uint32_t(HashOf(flows_[t[j] - 1], fwd)) & tableMask_;
      bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) break;
    }
    t[i] = t[j];
    i = j;
  }
}

bool Stage::AllocNatPort(Endpoint& e, uint8_t proto, uint16_t* out) {
  int w = proto == kProtoTcp ? 0 : 1;
  std::vector<uint64_t>& bits = e.natBits[w];
  uint32_t port = e.cursor[w];
  for (uint32_t scanned = 0; scanned < 65536u - kNatPortLo;) {
    if (port > 65535) port = kNatPortLo;
    uint64_t word = bits[port >> 6];
    if (word == ~uint64_t(0)) {
      uint32_t next = (port | 63) + 1;
      scanned += next - port;
      port = next;
      continue;
    }
    if (((word >> (port & 63)) & 1) == 0) {
      bits[port >> 6] = word | (uint64_t(1) << (port & 63));
      e.cursor[w] = port + 1 > 65535 ? kNatPortLo : port + 1;
      *out = uint16_t(port);
      return true;
    }
    port++;
    scanned++;
  }
  return false;
}

uint32_t Stage::NewFlow(uint32_t ei, uint32_t origin, uint32_t client, uint16_t clientPort, const PortMap& m,
                        uint16_t natPort, double now) {
  uint32_t idx = free_.back();
  free_.pop_back();
  Flow& f = flows_[idx];
  f.origin = origin;
  f.client = client;
  f.clientPort = clientPort;
  f.ep = eps_[ei].address;
  f.servicePort = m.servicePort;
  f.proto = m.protocol;
  f.natPort = natPort;
  f.backend = m.backendAddr;
  f.backendPort = m.backendPort;
  f.epIndex = ei;
  f.cls = m.protocol == kProtoTcp ? kTcpTransitory : kUdp;
  f.seen = 0;
  f.closing = 0;
  f.last = now;
  TableInsert(fwd_, HashOf(f, true), idx);
  TableInsert(rev_, HashOf(f, false), idx);
  Append(idx);
  eps_[ei].c.flows++;
  eps_[ei].c.flowsCreated += 1;
  liveFlows_++;
  return idx;
}

void Stage::RemoveFlow(uint32_t idx) {
  Flow& f = flows_[idx];
  TableErase(fwd_, HashOf(f, true), idx, true);
  TableErase(rev_, HashOf(f, false), idx, false);
  Unlink(idx);
  Endpoint& e = eps_[f.epIndex];
  e.natBits[f.proto == kProtoTcp ? 0 : 1][f.natPort >> 6] &= ~(uint64_t(1) << (f.natPort & 63));
  e.c.flows--;
  liveFlows_--;
  free_.push_back(idx);  // within the capacity reserved at Allocate: no allocation
}

void Stage::Unlink(uint32_t idx) {
  Flow& f = flows_[idx];
  if (f.prev != kNil)
    flows_[f.prev].next = f.next;
  else
    head_[f.cls] = f.next;
  if (f.next != kNil)
    flows_[f.next].prev = f.prev;
  else
    tail_[f.cls] = f.prev;
}

void Stage::Append(uint32_t idx) {
  Flow& f = flows_[idx];
  f.next = kNil;
  f.prev = tail_[f.cls];
  if (f.prev != kNil)
    flows_[f.prev].next = idx;
  else
    head_[f.cls] = idx;
  tail_[f.cls] = idx;
}

// A packet of the flow went by: its class may change (TCP established once it saw a packet each
// way, transitory again after a FIN or RST) and it moves to the tail of its class's LRU list.
void Stage::Touch(uint32_t idx, bool inbound, bool finOrRst, double now) {
  Flow& f = flows_[idx];
  f.seen |= inbound ? 1 : 2;
  if (finOrRst) f.closing = 1;
  uint8_t cls = kUdp;
  if (f.proto == kProtoTcp) cls = (f.seen == 3 && !f.closing) ? kTcpEstablished : kTcpTransitory;
  Unlink(idx);
  f.cls = cls;
  f.last = now;
  Append(idx);
}

size_t Stage::Expire(double now, size_t maxWork) {
  size_t n = 0;
  for (int cls = 0; cls < kClassCount; cls++) {
    while (n < maxWork && head_[cls] != kNil && now - flows_[head_[cls]].last > timeoutMs_[cls]) {
      RemoveFlow(head_[cls]);
      n++;
    }
  }
  return n;
}

// A flow found by a lookup, unless it is idle past its timeout (then removed at once, as expire
// would have: a lookup never revives a flow expire has not swept yet).
uint32_t Stage::Live(uint32_t idx, double now) {
  if (idx == kNil) return kNil;
  const Flow& f = flows_[idx];
  if (now - f.last <= timeoutMs_[f.cls]) return idx;
  RemoveFlow(idx);
  return kNil;
}

// ------------------------------------------------------------------ packet path

int Stage::CheckAcl(uint32_t origin, const uint8_t* p, size_t len) {
  if (acls_.empty() || origin == 0) return kPass;
  int ai = FindAcl(origin);
  if (ai < 0) return kPass;
  Acl& a = acls_[ai];
  int fam = 0;
  const uint8_t* dst = nullptr;
  uint8_t proto = 0;
  int dport = -1;  // unknown: rules that name ports do not match
  uint8_t v = len > 0 ? p[0] >> 4 : 0;
  if (v == 4 && len >= kIp4MinHeader) {
    size_t tot;
    size_t ihl = Ip4HeaderLen(p, len, &tot);
    if (ihl != 0) {  // a malformed header matches no rule
      fam = 4;
      dst = p + 16;
      proto = p[9];
      if ((proto == kProtoTcp || proto == kProtoUdp) && (Rd16(p + 6) & kFragOffsetMask) == 0 && ihl + 4 <= tot)
        dport = Rd16(p + ihl + 2);
    }
  } else if (v == 6 && len >= kIp6Header) {
    size_t end = kIp6Header + Rd16(p + 4);
    if (end <= len) {
      fam = 6;
      dst = p + 24;
      proto = p[6];
      size_t off = kIp6Header;
      bool later = false;
      for (int k = 0; k < kIp6MaxExtHeaders; k++) {
        if (proto == kIp6HopByHop || proto == kIp6Routing || proto == kIp6DestOpts || proto == kIp6Ah) {
          if (off + 2 > end) break;
          uint8_t next = p[off];
          off += proto == kIp6Ah ? (size_t(p[off + 1]) + 2) * 4 : (size_t(p[off + 1]) + 1) * 8;
          proto = next;
        } else if (proto == kIp6Fragment) {
          if (off + 8 > end) break;
          uint8_t next = p[off];
          if ((Rd16(p + off + 2) & 0xfff8) != 0) later = true;
          off += 8;
          proto = next;
        } else {
          break;
        }
      }
      if ((proto == kProtoTcp || proto == kProtoUdp) && !later && off + 4 <= end) dport = Rd16(p + off + 2);
    }
  }
  if (fam != 0) {
    uint32_t d0 = Rd32(dst);
    for (const Rule& r : a.rules) {
      if (r.family != fam || (r.protocol != 0 && r.protocol != proto)) continue;
      if (r.ports && (dport < r.portLo || dport > r.portHi)) continue;  // unknown (-1) never matches
      if ((d0 & r.mask[0]) != r.addr[0]) continue;
      if (fam == 6 && ((Rd32(dst + 4) & r.mask[1]) != r.addr[1] || (Rd32(dst + 8) & r.mask[2]) != r.addr[2] ||
                       (Rd32(dst + 12) & r.mask[3]) != r.addr[3]))
        continue;
      return kPass;
    }
  }
  drops_[kAclDenied - 1] += 1;
  *a.denied += 1;
  return kAclDenied;
}

int Stage::Inbound(uint8_t* p, size_t len, uint32_t origin, double now) {
  if (!eps_.empty() && len >= kIp4MinHeader && (p[0] >> 4) == 4) {
    int ei = FindEndpoint(Rd32(p + 16));
    if (ei >= 0) return InboundEndpoint(uint32_t(ei), p, len, origin, now);
  }
  return CheckAcl(origin, p, len);
}

int Stage::InboundEndpoint(uint32_t ei, uint8_t* p, size_t len, uint32_t origin, double now) {
  Endpoint& e = eps_[ei];
  size_t tot;
  size_t ihl = Ip4HeaderLen(p, len, &tot);
  if (ihl == 0) return Drop(&e, kEndpointBadPacket);
  if (!e.open) return Drop(&e, kEndpointClosed);
  uint32_t src = Rd32(p + 12);
  if (!Admitted(e, origin, src)) return Drop(&e, kEndpointDenied);
  uint8_t proto = p[9];
  bool later = (Rd16(p + 6) & kFragOffsetMask) != 0;
  if (proto == kProtoIcmp) {
    if (!later && InboundIcmp(ei, p, ihl, tot, origin, now)) return kPass;
    return Drop(&e, kEndpointNoPort);
  }
  if (proto != kProtoTcp && proto != kProtoUdp) return Drop(&e, kEndpointNoPort);
  uint8_t* l4 = PortsHeader(p, ihl, tot, proto, later);
  if (!l4) return Drop(&e, kEndpointBadPacket);
  uint16_t sport = Rd16(l4), dport = Rd16(l4 + 2);
  const PortMap* m = nullptr;
  for (const PortMap& x : e.ports)
    if (x.protocol == proto && x.servicePort == dport) {
      m = &x;
      break;
    }
  if (!m) return Drop(&e, kEndpointNoPort);
  uint8_t flags = proto == kProtoTcp ? l4[13] : 0;
  // RFC 9293 §3.5: a SYN (without ACK or RST) opens a connection
  bool syn = (flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn;
  uint32_t idx = Live(FindFwd(origin, src, sport, e.address, dport, proto), now);
  if (idx == kNil) {
    if (proto == kProtoTcp && !syn) return Drop(&e, kEndpointNoFlow);
    uint16_t natPort;
    if (liveFlows_ >= limits_.maxFlows || free_.empty() || !AllocNatPort(e, proto, &natPort))
      return Drop(&e, kEndpointTableFull);
    idx = NewFlow(ei, origin, src, sport, *m, natPort, now);
  } else if (syn && flows_[idx].closing) {
    // the client reopens the same 4-tuple after a close: a new connection through the same NAT port
    flows_[idx].seen = 0;
    flows_[idx].closing = 0;
  }
  Touch(idx, true, (flags & (kTcpFin | kTcpRst)) != 0, now);
  const Flow& f = flows_[idx];
  Translate(p, l4, proto, f.ep, f.natPort, f.backend, f.backendPort);
  e.c.packetsIn += 1;
  e.c.bytesIn += double(tot);
  return kPass;
}

// An ICMP error a client sends about a packet of a flow (one the backend sent, as the client saw
// it: E:servicePort -> client:sport): carried to the backend as if the flow's own translation
// applied, outer E -> backend, quoted backend:backendPort -> E:natPort. Anything else ICMP to an
// endpoint has no port map.
bool Stage::InboundIcmp(uint32_t ei, uint8_t* p, size_t ihl, size_t tot, uint32_t origin, double now) {
  Endpoint& e = eps_[ei];
  uint8_t* icmp = p + ihl;
  uint8_t* q = Quoted(icmp, tot - ihl, e.address);
  if (!q) return false;
  size_t qihl = size_t(q[0] & 15) * 4;
  uint8_t* ql4 = q + qihl;
  uint8_t qproto = q[9];
  uint32_t idx = Live(FindFwd(origin, Rd32(q + 16), Rd16(ql4 + 2), e.address, Rd16(ql4), qproto), now);
  if (idx == kNil) return false;
  const Flow& f = flows_[idx];
  TranslateQuoted(icmp, q, qihl, tot - ihl - kIcmpHeader, qproto, f.backend, f.backendPort, f.ep, f.natPort);
  TranslateAddrs(p, f.ep, f.backend);
  e.c.packetsIn += 1;
  e.c.bytesIn += double(tot);
  return true;
}

// The IPv4 datagram an ICMP error at icmp[0, icmpLen) quotes, when it is one the stage translates:
// type 3, 11 or 12; the quoted header complete with at least 8 bytes after it (RFC 792), not a
// later fragment, TCP or UDP, from the endpoint's address `ep`. Null otherwise.
uint8_t* Stage::Quoted(uint8_t* icmp, size_t icmpLen, uint32_t ep) {
  if (icmpLen < kIcmpHeader + kIp4MinHeader || !IsIcmpError(icmp[0])) return nullptr;
  uint8_t* q = icmp + kIcmpHeader;
  size_t qavail = icmpLen - kIcmpHeader;
  size_t qihl = size_t(q[0] & 15) * 4;
  uint8_t qproto = q[9];
  if ((q[0] >> 4) != 4 || qihl < kIp4MinHeader || qihl + kIcmpQuotedL4 > qavail ||
      (qproto != kProtoTcp && qproto != kProtoUdp) || (Rd16(q + 6) & kFragOffsetMask) != 0 || Rd32(q + 12) != ep)
    return nullptr;
  return q;
}

int Stage::Outbound(uint8_t* p, size_t len, double now) {
  if (eps_.empty() || len < kIp4MinHeader || (p[0] >> 4) != 4) return kPass;
  int found = FindEndpoint(Rd32(p + 16));
  if (found < 0) return kPass;
  uint32_t ei = uint32_t(found);
  Endpoint& e = eps_[ei];
  size_t tot;
  size_t ihl = Ip4HeaderLen(p, len, &tot);
  if (ihl == 0) return Drop(&e, kEndpointBadPacket);
  uint8_t proto = p[9];
  bool later = (Rd16(p + 6) & kFragOffsetMask) != 0;
  if (proto == kProtoIcmp) {
    if (later || !OutboundIcmp(ei, p, ihl, tot, now)) return Drop(&e, kEndpointNoFlow);
    e.c.packetsOut += 1;
    e.c.bytesOut += double(tot);
    return kPass;
  }
  if (proto != kProtoTcp && proto != kProtoUdp) return Drop(&e, kEndpointNoFlow);
  uint8_t* l4 = PortsHeader(p, ihl, tot, proto, later);
  if (!l4) return Drop(&e, kEndpointBadPacket);
  uint32_t idx = Live(FindRev(e.address, proto, Rd16(l4 + 2)), now);
  // a reply must come from the flow's backend: nobody else in the VPC may inject into a client's flow
  if (idx == kNil || Rd32(p + 12) != flows_[idx].backend || Rd16(l4) != flows_[idx].backendPort)
    return Drop(&e, kEndpointNoFlow);
  uint8_t flags = proto == kProtoTcp ? l4[13] : 0;
  Touch(idx, false, (flags & (kTcpFin | kTcpRst)) != 0, now);
  const Flow& f = flows_[idx];
  Translate(p, l4, proto, f.ep, f.servicePort, f.client, f.clientPort);
  e.c.packetsOut += 1;
  e.c.bytesOut += double(tot);
  return kPass;
}

// An ICMP error from the VPC quoting a translated packet (E:natPort -> backend:backendPort): the
// quoted header goes back to what the client sent (client:sport -> E:servicePort) and the outer
// destination to the client; the sender (the backend or a router) stays as it is.
bool Stage::OutboundIcmp(uint32_t ei, uint8_t* p, size_t ihl, size_t tot, double now) {
  Endpoint& e = eps_[ei];
  uint8_t* icmp = p + ihl;
  uint8_t* q = Quoted(icmp, tot - ihl, e.address);
  if (!q) return false;
  size_t qihl = size_t(q[0] & 15) * 4;
  uint8_t* ql4 = q + qihl;
  uint8_t qproto = q[9];
  uint32_t idx = Live(FindRev(e.address, qproto, Rd16(ql4)), now);
  if (idx == kNil) return false;
  const Flow& f = flows_[idx];
  if (Rd32(q + 16) != f.backend || Rd16(ql4 + 2) != f.backendPort) return false;
  TranslateQuoted(icmp, q, qihl, tot - ihl - kIcmpHeader, qproto, f.client, f.clientPort, f.ep, f.servicePort);
  TranslateAddrs(p, Rd32(p + 12), f.client);
  return true;
}

}  // namespace policy
}  // namespace vpcgw
