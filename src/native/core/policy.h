// The data path's policy stage in C++: ACLs by origin and VPC endpoint translation (destination NAT
// to a backend plus source NAT to the endpoint's address), with the semantics, drop reasons and
// counters src/vpcep/policy.ts defines for both data planes. Pure: no N-API, no I/O, no clock; the
// caller passes `now` (ms on any monotonic clock). The engine (../engine/engine.cc) runs Inbound on
// every packet a tunnel hands to the TUN and Outbound on every packet read from the TUN; the
// test-only addon (../testing/policy-core.cc) drives the same object directly.
//
// Inbound (tunnel -> TUN), per packet with origin o:
//   1. IPv4 to an endpoint address E: a sane header (IHL, total length)? open? whitelisted (o, or
//      the source in a CIDR)? TCP/UDP: not a later fragment, the transport header present, a port
//      map for (protocol, dport), the flow (o, src, sport, E, dport, protocol), created for UDP and
//      for a TCP SYN without ACK or RST; rewritten to E:natPort -> backend:backendPort. ICMP errors
//      (3, 11, 12) a client sends about a flow's packet are carried to the backend with the quoted
//      header translated as well.
//   2. otherwise the origin's ACL, if it has one.
// Outbound (TUN -> tunnel), IPv4 to E: TCP/UDP from the flow's backend by the flow (E, protocol,
//   natPort), rewritten back to E:servicePort -> client; ICMP errors quoting E:natPort -> backend
//   translated back (quoted header and outer destination); anything else dropped.
// A flow idle past its timeout is never used again, whether Expire has swept it yet or not.
// The choices src/vpcep/policy.ts leaves open are made as the TypeScript stage (src/vpcep/nat.ts)
// makes them, except that Expire removes every idle flow it reaches (up to maxWork) rather than
// sweeping a fixed number of slots.
// Flow storage is preallocated at SetPolicy (sized from limits.maxFlows): a flow array with a free
// list, two open-addressing index tables (forward key, reverse key; linear probing with backward-
// shift deletion, so no tombstones), per-(endpoint, protocol) bitmaps of NAT ports, and one LRU list
// per timeout class, so Expire does O(1) work per expired flow and never scans live ones. Nothing is
// allocated per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace vpcgw {
namespace policy {

// Verdicts: kPass, or 1 + the index of the drop reason in POLICY_DROPS (src/vpcep/policy.ts).
enum Verdict : int {
  kPass = 0,
  kAclDenied = 1,
  kEndpointClosed = 2,
  kEndpointDenied = 3,
  kEndpointNoPort = 4,
  kEndpointNoFlow = 5,
  kEndpointTableFull = 6,
  kEndpointBadPacket = 7,
};
constexpr int kDropCount = 7;

// IP protocol numbers (IANA)
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

// Implementation choices
constexpr uint32_t kMaxFlows = 1u << 24;  // the largest limits.maxFlows accepted (as src/vpcep/nat.ts)
constexpr uint16_t kNatPortLo = 1024;             // NAT ports come from 1024..65535 (policy.ts)

struct PortMap {
  uint8_t protocol = 0;  // kProtoTcp or kProtoUdp
  uint16_t servicePort = 0;
  uint32_t backendAddr = 0;
  uint16_t backendPort = 0;
};

struct Prefix4 {
  uint32_t addr = 0;
  uint8_t len = 0;
};

struct EndpointRule {
  uint32_t id = 0;
  uint32_t address = 0;
  bool open = false;
  std::vector<PortMap> ports;
  std::vector<uint32_t> origins;
  std::vector<Prefix4> sources;
};

struct AclRule {
  uint8_t family = 4;
  uint8_t addr[16] = {0};
  uint8_t len = 0;
  uint8_t protocol = 0;  // 0: any
  uint16_t portLo = 0, portHi = 65535;
};

struct OriginAcl {
  uint32_t origin = 0;
  std::vector<AclRule> rules;
};

struct Limits {
  uint32_t maxFlows = 65536;
  double tcpEstablishedMs = 2 * 3600000.0;
  double tcpTransitoryMs = 60000;
  double udpMs = 60000;
};

struct Config {
  std::vector<EndpointRule> endpoints;
  std::vector<OriginAcl> acls;
  Limits limits;
};

struct EndpointCounters {
  uint32_t id = 0;
  uint32_t flows = 0;
  double flowsCreated = 0;
  double packetsIn = 0, bytesIn = 0;
  double packetsOut = 0, bytesOut = 0;
  double drops[kDropCount] = {0};  // by verdict - 1 (aclDenied stays 0)
};

class Stage {
 public:
  Stage();
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  // Replaces the whole policy. Flows of endpoints that are gone or closed, whose address changed,
  // whose port map (protocol, servicePort) no longer leads to the same backend, or whose origin is
  // no longer admitted are removed; the others survive with their NAT port.
  void SetPolicy(const Config& c, double now);

  // Inbound has work to do (endpoints or ACLs); Outbound has work to do (endpoints).
  bool inboundActive() const { return inboundActive_; }
  bool outboundActive() const { return !eps_.empty(); }

  // A decrypted IP packet p[0, len) of a tunnel with `origin`: kPass (maybe rewritten in place,
  // same length) or a drop verdict (counted).
  int Inbound(uint8_t* p, size_t len, uint32_t origin, double now);
  // A packet read from the TUN, before its route lookup.
  int Outbound(uint8_t* p, size_t len, double now);
  // Forgets flows idle past their timeout, at most maxWork of them; returns how many.
  size_t Expire(double now, size_t maxWork);

  const double* drops() const { return drops_; }
  uint32_t flows() const { return liveFlows_; }
  size_t endpointCount() const { return eps_.size(); }
  const EndpointCounters& endpointCounters(size_t i) const { return eps_[i].c; }
  // aclDenied per origin, every origin that ever had a denial.
  const std::unordered_map<uint32_t, double>& aclDenied() const { return aclDenied_; }

 private:
  static constexpr uint32_t kNil = 0xffffffffu;
  enum FlowClass : uint8_t { kUdp = 0, kTcpTransitory = 1, kTcpEstablished = 2, kClassCount = 3 };

  struct Endpoint {
    uint32_t address = 0;
    bool open = false;
    std::vector<PortMap> ports;
    std::vector<uint32_t> origins;
    std::vector<Prefix4> sources;
    std::vector<uint64_t> natBits[2];  // NAT ports in use (TCP, UDP): 65536 bits each
    uint32_t cursor[2] = {kNatPortLo, kNatPortLo};
    EndpointCounters c;
  };

  // An ACL rule compiled for matching: the destination prefix as masked 32-bit words (IPv4 uses
  // the first), and whether the rule restricts the destination port.
  struct Rule {
    uint8_t family;
    uint8_t protocol;
    bool ports;  // TCP/UDP rule with a port range narrower than 0..65535
    uint16_t portLo, portHi;
    uint32_t addr[4], mask[4];
  };

  struct Acl {
    uint32_t origin = 0;
    std::vector<Rule> rules;
    double* denied = nullptr;  // into aclDenied_ (node-based map: stable address)
  };

  struct Flow {
    uint32_t origin;
    uint32_t client;
    uint32_t ep;       // the endpoint's address E
    uint32_t backend;
    uint16_t clientPort, servicePort, natPort, backendPort;
    uint8_t proto;
    uint8_t cls;       // FlowClass
    uint8_t seen;      // 1 inbound, 2 outbound
    uint8_t closing;   // a FIN or RST went by
    uint32_t epIndex;
    uint32_t prev, next;  // LRU list of its class (kNil ends)
    double last;
  };

  int FindEndpoint(uint32_t addr) const;
  int FindAcl(uint32_t origin) const;
  bool Admitted(const Endpoint& e, uint32_t origin, uint32_t src) const;
  int CheckAcl(uint32_t origin, const uint8_t* p, size_t len);
  int InboundEndpoint(uint32_t ei, uint8_t* p, size_t len, uint32_t origin, double now);
  bool InboundIcmp(uint32_t ei, uint8_t* p, size_t ihl, size_t tot, uint32_t origin, double now);
  bool OutboundIcmp(uint32_t ei, uint8_t* p, size_t ihl, size_t tot, double now);
  static uint8_t* Quoted(uint8_t* icmp, size_t icmpLen, uint32_t ep);
  uint32_t Live(uint32_t idx, double now);
  int Drop(Endpoint* e, int v) {
    drops_[v - 1] += 1;
    if (e) e->c.drops[v - 1] += 1;
    return v;
  }

  // flow table
  uint64_t FwdHash(uint32_t origin, uint32_t client, uint16_t clientPort, uint32_t ep, uint16_t servicePort,
                   uint8_t proto) const;
  uint64_t RevHash(uint32_t ep, uint8_t proto, uint16_t natPort) const;
  uint32_t FindFwd(uint32_t origin, uint32_t client, uint16_t clientPort, uint32_t ep, uint16_t servicePort,
                   uint8_t proto) const;
  uint32_t FindRev(uint32_t ep, uint8_t proto, uint16_t natPort) const;
  void TableInsert(std::vector<uint32_t>& t, uint64_t h, uint32_t idx);
  void TableErase(std::vector<uint32_t>& t, uint64_t h, uint32_t idx, bool fwd);
  uint64_t HashOf(const Flow& f, bool fwd) const;
  bool AllocNatPort(Endpoint& e, uint8_t proto, uint16_t* out);
  uint32_t NewFlow(uint32_t ei, uint32_t origin, uint32_t client, uint16_t clientPort, const PortMap& m,
                   uint16_t natPort, double now);
  void RemoveFlow(uint32_t idx);
  void Unlink(uint32_t idx);
  void Append(uint32_t idx);
  void Touch(uint32_t idx, bool inbound, bool finOrRst, double now);
  void Allocate(uint32_t capacity);

  uint64_t seed_;
  bool inboundActive_ = false;
  Limits limits_;
  double timeoutMs_[kClassCount] = {60000, 60000, 7200000};
  std::vector<Endpoint> eps_;
  std::vector<uint32_t> epTable_;  // endpoint index + 1 by address (open addressing), 0 empty
  std::vector<Acl> acls_;
  std::vector<uint32_t> aclTable_;  // acl index + 1 by origin
  std::unordered_map<uint32_t, double> aclDenied_;
  double drops_[kDropCount] = {0};

  std::vector<Flow> flows_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> fwd_, rev_;  // flow index + 1, 0 empty
  uint32_t tableMask_ = 0;
  uint32_t liveFlows_ = 0;
  uint32_t head_[kClassCount] = {kNil, kNil, kNil}, tail_[kClassCount] = {kNil, kNil, kNil};
};

// RFC 1071 one's-complement sum over p[0, len) added to `sum` (not folded, not inverted); tests and
// the fuzz target use it to check the incremental updates.
uint32_t CsumAdd(const uint8_t* p, size_t len, uint32_t sum);
uint16_t CsumFold(uint32_t sum);

}  // namespace policy
}  // namespace vpcgw
