// The native data plane: TUN <-> ESP-in-UDP (RFC 4303 tunnel mode, RFC 3948) entirely in C++, on the
// event loop thread. JavaScript sees only control packets (IKE behind the non-ESP marker), packets
// routed to a JS sink (the SSL VPN), and SA events: copied into pinned JS buffers and announced by
// one callback per batch.
//
// Outbound flow (TUN readable):
//   1. read packets into tx slots (with IFF_VNET_HDR: read a super-packet, complete a partial
//      checksum, split TCP super-packets into MSS segments, one per slot);
//   2. per packet: IP header sanity, LPM on the inner destination (per-length hash tables);
//   3. a sink route copies the packet for JS; an SA route finds the outbound SA by SPI, checks policy,
//      and encapsulates in place in the slot (headroom for SPI|Seq|IV, tailroom for trailer + ICV);
//   4. flush: per UDP bind one sendmmsg; with GSO, runs of equal-size datagrams to the same SA go
//      as one message with UDP_SEGMENT; then one JS callback for control/sink/events.
// Inbound flow (UDP readable):
//   1. recvmmsg into rx slots; 0xff = NAT-T keepalive (counted), zero marker = IKE (copied for JS);
//   2. SPI -> inbound SA, decap in place (replay check, ICV, replay update, padding, policy);
//   3. the inner packets are written to the TUN: one write each, or with GRO coalesced into TCP
//      super-packets carrying a virtio_net_hdr; then one JS callback.
// SSL VPN (OpenVPN data channel, ovpn.cc) as a second framing on the same machinery:
//   - a route may name an SSL session (by peer-id): step 3 encrypts P_DATA_V2 in place instead,
//     and step 4 sends it from the session's SSL socket (GSO runs per session);
//   - SSL sockets (attachSsl) demux by first byte: data opcodes with a known peer-id from the
//     session's own addr:port are decrypted in place and go to the TUN (pings are counted);
//     everything else (control, unknown peer, a float) and OCC / client-to-client plaintext is
//     copied for JS and announced by one SSL callback per batch.
// Errors never stop a poll: POLLERR is counted, the socket error queue drained, the poll re-armed.
// Nothing is allocated per packet; SAs removed while a batch runs are freed after it.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <vector>

#include "bytes.h"
#include "common.h"
#include "esp.h"
#include "offload.h"
#include "ovpn.h"
#include "sockaddr.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace vpcgw {
namespace {

using esp::Sa;
using esp::Span;

// Implementation choices
constexpr uint32_t kReadBatch = 64;       // packets per TUN read round / UDP recvmmsg
constexpr int kMaxRoundsPerWake = 8;      // then yield to other handles (level-triggered poll)
constexpr size_t kHeadroom = 64;          // >= ESP header + IV, >= vnet header
constexpr size_t kTailroom = 64;          // >= ESP trailer + ICV
constexpr uint32_t kMaxSegsPerRead = 64;  // TSO: 64 KiB / MSS
constexpr uint32_t kTxSlots = kReadBatch + kMaxSegsPerRead;
constexpr uint32_t kGsoMaxSegs = 64;      // UDP_MAX_SEGMENTS
constexpr size_t kGsoMaxBytes = 65000;
constexpr size_t kSuperPacket = 65535 + offload::kVnetHdrSize;
constexpr uint32_t kJsTunSlots = 64;
constexpr size_t kNonEspMarker = 4;
constexpr uint8_t kNatKeepalive = 0xff;

// Indices into the stats Float64Array (mirrored in src/dataplane/native-data-plane.ts).
enum Stat {
  kTunRxPackets = 0,
  kEspTxPackets,
  kEspRxPackets,
  kTunTxPackets,
  kSinkPackets,
  kControlPackets,
  kNatKeepalives,
  kUdpRxDatagrams,
  kUdpTxDatagrams,
  kUdpSendMsgs,
  kSendErrors,
  kTunWriteErrors,
  kTunReadErrors,
  kPollErrors,
  kIcmpErrors,
  kGsoSends,
  kTsoSuperPackets,
  kGroWrites,
  kGroSegments,
  kTruncated,
  kJsCallbacks,
  kSslRxPackets,  // decrypted data packets (IP to the TUN, pings, OCC)
  kSslTxPackets,  // encrypted data packets queued for sending
  kSslDrops,      // SSL data packets dropped by a native session (per-session reasons in sslCounters)
  kStatDrops = 24,  // 15 drop counters follow
  kStatCount = kStatDrops + esp::kDropCount
};

// Layouts of the pinned JS buffers.
constexpr uint32_t kCtlStride = 5;    // off, len, bind, family, port (+ 16 bytes in ctlAddr)
constexpr uint32_t kSinkStride = 3;   // off, len, sink index
constexpr uint32_t kEventStride = 3;  // spi, direction (0 in, 1 out), event bits
constexpr uint32_t kSslStride = 7;    // off, len, bind, family, port, peer-id, kind (+ 16 bytes in addr)
constexpr uint32_t kSslDatagram = 0;  // a raw datagram JS handles (control, unknown peer, float)
constexpr uint32_t kSslPlaintext = 1; // decrypted payload of a session JS decides on (OCC, client-to-client)
constexpr uint32_t kSslCounterHead = 12;

struct RouteKey {
  uint64_t hi = 0, lo = 0;
  bool operator==(const RouteKey& o) const { return hi == o.hi && lo == o.lo; }
};
struct RouteKeyHash {
  size_t operator()(const RouteKey& k) const { return std::hash<uint64_t>()(k.hi * 0x9e3779b97f4a7c15ull ^ k.lo); }
};
struct RouteTarget {
  uint32_t spi = 0;
  int32_t sink = -1;  // >= 0: a JS sink index
  int32_t ssl = -1;   // >= 0: an SSL VPN session's peer-id
};

// Longest-prefix match: one hash table per prefix length, probed from the longest present length.
class RouteTable {
 public:
  static RouteKey Key(const uint8_t* a, size_t alen, unsigned plen) {
    uint8_t b[16] = {0};
    memcpy(b, a, alen);
    size_t full = plen >> 3;
    if (full < 16) {
      unsigned rem = plen & 7;
      b[full] &= uint8_t(0xff << (8 - rem));
      for (size_t i = full + 1; i < 16; i++) b[i] = 0;
    }
    RouteKey k;
    for (int i = 0; i < 8; i++) k.hi = (k.hi << 8) | b[i];
    for (int i = 8; i < 16; i++) k.lo = (k.lo << 8) | b[i];
    return k;
  }
  void Set(const uint8_t* a, size_t alen, unsigned plen, RouteTarget t) {
    auto& m = byLen_[plen];
    bool had = m.count(Key(a, alen, plen)) > 0;
    m[Key(a, alen, plen)] = t;
    if (!had) Recount();
  }
  bool Remove(const uint8_t* a, size_t alen, unsigned plen) {
    bool r = byLen_[plen].erase(Key(a, alen, plen)) > 0;
    if (r) Recount();
    return r;
  }
  const RouteTarget* Get(const uint8_t* a, size_t alen, unsigned plen) const {
    auto it = byLen_[plen].find(Key(a, alen, plen));
    return it == byLen_[plen].end() ? nullptr : &it->second;
  }
  const RouteTarget* Lookup(const uint8_t* a, size_t alen) const {
    for (unsigned plen : lens_) {
      auto it = byLen_[plen].find(Key(a, alen, plen));
      if (it != byLen_[plen].end()) return &it->second;
    }
    return nullptr;
  }
  void Clear() {
    for (auto& m : byLen_) m.clear();
    lens_.clear();
  }

 private:
  void Recount() {
    lens_.clear();
    for (int l = 128; l >= 0; l--)
      if (!byLen_[l].empty()) lens_.push_back(unsigned(l));
  }
  std::unordered_map<RouteKey, RouteTarget, RouteKeyHash> byLen_[129];
  std::vector<unsigned> lens_;  // present lengths, longest first
};

struct OutSa {
  std::unique_ptr<Sa> sa;
  Napi::ObjectReference seqRef;  // keeps sa->seqCell's SharedArrayBuffer view alive (multi-queue)
  sockaddr_storage to{};
  socklen_t toLen = 0;
};

struct TxEntry {
  uint8_t* data;
  uint32_t len;
  int32_t bind;
  const void* group;  // GSO runs never mix groups (an ESP SA or an SSL session)
  const sockaddr_storage* to;
  socklen_t toLen;
};

class DataPlaneHandle;

struct Bind {
  DataPlaneHandle* owner = nullptr;
  int index = 0;
  int fd = -1;
  int sockFamily = AF_INET;
  bool ssl = false;  // an SSL VPN socket (OpenVPN demux) rather than ESP-in-UDP / IKE
  Poller poller;
};

// A native SSL VPN session: the data channel plus where it talks to and what it may send in.
struct SslPeer {
  std::unique_ptr<ovpn::Session> s;
  int bind = -1;
  sockaddr_storage to{};
  socklen_t toLen = 0;
  bool hasVaddr = false;
  uint8_t vaddr[4] = {0};        // the client's virtual IPv4 address (inner source check)
  uint8_t clientNet[4] = {0};    // the client pool: inner destinations inside go to JS (client-to-client)
  uint8_t clientLen = 0;
  uint8_t serverAddr[4] = {0};   // ...except the server's own tunnel address
};

bool SameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const sockaddr_in& x = reinterpret_cast<const sockaddr_in&>(a);
    const sockaddr_in& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const sockaddr_in6& x = reinterpret_cast<const sockaddr_in6&>(a);
    const sockaddr_in6& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
  }
  return false;
}

bool InPrefix4(const uint8_t* a, const uint8_t* net, unsigned len) {
  uint32_t x = Rd32(a);
  uint32_t n = Rd32(net);
  uint32_t m = len == 0 ? 0 : (0xffffffffu << (32 - len));
  return (x & m) == (n & m);
}

bool IsIcmpErrno(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ENETDOWN ||
         e == EPROTO || e == ENOPROTOOPT || e == ECONNRESET;
}

bool ParsePrefixes(const Napi::Value& v, std::vector<esp::Prefix>* out) {
  // packed: 18 bytes per prefix (family, length, 16 address bytes)
  RawView r;
  if (!v.IsObject() || !GetRaw(v.Env(), v, &r) || r.bytes % 18 != 0) return false;
  for (size_t i = 0; i < r.bytes; i += 18) {
    esp::Prefix p;
    p.family = r.data[i];
    p.len = r.data[i + 1];
    if ((p.family != 4 && p.family != 6) || p.len > (p.family == 4 ? 32 : 128)) return false;
    memcpy(p.bytes, r.data + i + 2, 16);
    out->push_back(p);
  }
  return true;
}

class DataPlaneHandle : public Napi::ObjectWrap<DataPlaneHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DataPlaneHandle",
                       {
                           InstanceMethod<&DataPlaneHandle::AttachTun>("attachTun"),
                           InstanceMethod<&DataPlaneHandle::AttachUdp>("attachUdp"),
                           InstanceMethod<&DataPlaneHandle::Start>("start"),
                           InstanceMethod<&DataPlaneHandle::InstallSa>("installSa"),
                           InstanceMethod<&DataPlaneHandle::RemoveSa>("removeSa"),
                           InstanceMethod<&DataPlaneHandle::SaCounters>("saCounters"),
                           InstanceMethod<&DataPlaneHandle::AddRoute>("addRoute"),
                           InstanceMethod<&DataPlaneHandle::RemoveRoute>("removeRoute"),
                           InstanceMethod<&DataPlaneHandle::LookupRoute>("lookupRoute"),
                           InstanceMethod<&DataPlaneHandle::SendControl>("sendControl"),
                           InstanceMethod<&DataPlaneHandle::WriteTun>("writeTun"),
                           InstanceMethod<&DataPlaneHandle::FlushTun>("flushTun"),
                           InstanceMethod<&DataPlaneHandle::SetOptions>("setOptions"),
                           InstanceMethod<&DataPlaneHandle::Close>("close"),
                           InstanceMethod<&DataPlaneHandle::AttachSsl>("attachSsl"),
                           InstanceMethod<&DataPlaneHandle::DetachSsl>("detachSsl"),
                           InstanceMethod<&DataPlaneHandle::SetSslHandler>("setSslHandler"),
                           InstanceMethod<&DataPlaneHandle::InstallSslSession>("installSslSession"),
                           InstanceMethod<&DataPlaneHandle::UpdateSslSession>("updateSslSession"),
                           InstanceMethod<&DataPlaneHandle::SetSslKey>("setSslKey"),
                           InstanceMethod<&DataPlaneHandle::RetireSslKey>("retireSslKey"),
                           InstanceMethod<&DataPlaneHandle::RemoveSslSession>("removeSslSession"),
                           InstanceMethod<&DataPlaneHandle::AddSslRoute>("addSslRoute"),
                           InstanceMethod<&DataPlaneHandle::RemoveSslRoute>("removeSslRoute"),
                           InstanceMethod<&DataPlaneHandle::SslCounters>("sslCounters"),
                           InstanceMethod<&DataPlaneHandle::SslSend>("sslSend"),
                           InstanceMethod<&DataPlaneHandle::SslDecrypt>("sslDecrypt"),
                       });
  }

  // new DataPlaneHandle({ stats, ctlBuf, ctlMeta, ctlAddr, sinkBuf, sinkMeta, events, maxPacket })
  explicit DataPlaneHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlaneHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "DataPlaneHandle(options)");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    if (!stats_.Pin(env, o.Get("stats")) || stats_.count < kStatCount || !ctlBuf_.Pin(env, o.Get("ctlBuf")) ||
        !ctlMeta_.Pin(env, o.Get("ctlMeta")) || !ctlAddr_.Pin(env, o.Get("ctlAddr")) ||
        !sinkBuf_.Pin(env, o.Get("sinkBuf")) || !sinkMeta_.Pin(env, o.Get("sinkMeta")) ||
        !events_.Pin(env, o.Get("events")) || !o.Get("maxPacket").IsNumber()) {
      ThrowType(env, "DataPlaneHandle: bad options");
      return;
    }
    ctlCap_ = uint32_t(std::min<size_t>(ctlMeta_.count / kCtlStride, ctlAddr_.count / 16));
    sinkCap_ = uint32_t(sinkMeta_.count / kSinkStride);
    evCap_ = uint32_t(events_.count / kEventStride);
    maxPacket_ = o.Get("maxPacket").As<Napi::Number>().Uint32Value();
    if (maxPacket_ < 576 || maxPacket_ > 9000 || ctlCap_ == 0 || sinkCap_ == 0 || evCap_ == 0) {
      ThrowType(env, "DataPlaneHandle: bad geometry");
      return;
    }
    slot_ = (kHeadroom + maxPacket_ + kTailroom + 63) & ~size_t(63);
    tx_.resize(kTxSlots * slot_);
    txEntries_.resize(kTxSlots);
    txIdx_.resize(kTxSlots);
    rx_.resize(kReadBatch * slot_);
    rxMsgs_.assign(kReadBatch, mmsghdr{});
    rxIov_.resize(kReadBatch);
    rxAddr_.resize(kReadBatch);
    for (uint32_t i = 0; i < kReadBatch; i++) {
      rxIov_[i].iov_base = rx_.data() + i * slot_ + kHeadroom;
      rxIov_[i].iov_len = maxPacket_ + kTailroom;  // room to see an oversize datagram as truncated
      msghdr& h = rxMsgs_[i].msg_hdr;
      h.msg_name = &rxAddr_[i];
      h.msg_iov = &rxIov_[i];
      h.msg_iovlen = 1;
    }
    txMsgs_.resize(kTxSlots);
    txIov_.resize(kTxSlots);
    txCtrl_.resize(kTxSlots * CMSG_SPACE(sizeof(uint16_t)));
    tunOut_.resize(kReadBatch);
    jsTun_.resize(kJsTunSlots * maxPacket_);
    jsTunLen_.resize(kJsTunSlots);
    scratch_.resize(kSuperPacket + kHeadroom);
    groBuf_.resize(kSuperPacket);
    coalescer_.reset(new offload::Coalescer(groBuf_.data(), groBuf_.size()));
    segLens_.resize(kMaxSegsPerRead);
    sslTx_.resize(slot_);
  }

  ~DataPlaneHandle() override {
    if (ownsTunFd_ && tunFd_ >= 0) close(tunFd_);
  }

 private:
  double* st() { return stats_.ptr; }
  void DropCount(int r) { stats_.ptr[kStatDrops + r] += 1; }

  // ------------------------------------------------------------------ setup

  // attachTun(fd, vnetHdr: boolean, owns: boolean)
  Napi::Value AttachTun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || tunFd_ >= 0 || info.Length() < 3 || !info[0].IsNumber()) {
      ThrowType(env, "attachTun(fd, vnetHdr, owns) once, before start");
      return env.Undefined();
    }
    tunFd_ = info[0].As<Napi::Number>().Int32Value();
    vnet_ = info[1].ToBoolean().Value();
    ownsTunFd_ = info[2].ToBoolean().Value();
    return env.Undefined();
  }

  // attachUdp(fd) -> bind index
  Napi::Value AttachUdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || started_ || info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "attachUdp(fd) before start");
      return env.Undefined();
    }
    auto b = std::make_unique<Bind>();
    b->owner = this;
    b->index = int(binds_.size());
    b->fd = info[0].As<Napi::Number>().Int32Value();
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(b->fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) {
      ThrowErrno(env, "getsockname", errno);
      return env.Undefined();
    }
    b->sockFamily = ss.ss_family;
    binds_.push_back(std::move(b));
    return Napi::Number::New(env, binds_.size() - 1);
  }

  // setOptions(gso, gro, tso): offload switches (tso/gro need a vnet-header TUN)
  Napi::Value SetOptions(const Napi::CallbackInfo& info) {
    gso_ = info.Length() > 0 && info[0].ToBoolean().Value();
    gro_ = info.Length() > 1 && info[1].ToBoolean().Value() && vnet_;
    return info.Env().Undefined();
  }

  // start(cb(ctlCount, sinkCount, eventCount))
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || started_ || info.Length() < 1 || !info[0].IsFunction()) {
      ThrowType(env, "start(cb) once");
      return env.Undefined();
    }
    cb_ = Napi::Persistent(info[0].As<Napi::Function>());
    napi_async_init(env, Value(), Napi::String::New(env, "vpcgw:dataplane"), &async_);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    loop_ = loop;
    if (tunFd_ >= 0) {
      tunCtx_.owner = this;
      tunCtx_.index = -1;
      tunCtx_.fd = tunFd_;
      int rc = tunCtx_.poller.Start(loop, tunFd_, &tunCtx_, &DataPlaneHandle::OnPollThunk);
      if (rc != 0) {
        ThrowErrno(env, "uv_poll_start", -rc);
        return env.Undefined();
      }
      polls_++;
    }
    for (auto& b : binds_) {
      if (b->fd < 0) continue;  // an SSL socket detached before start
      int rc = b->poller.Start(loop, b->fd, b.get(), &DataPlaneHandle::OnPollThunk);
      if (rc != 0) {
        ThrowErrno(env, "uv_poll_start", -rc);
        return env.Undefined();
      }
      polls_++;
    }
    started_ = true;
    Ref();  // alive while polling
    return env.Undefined();
  }

  // ------------------------------------------------------------------ SAs and routes

  // installSa({ inbound, spi, encr, encrKeyBits, integ, encrKey, integKey, replayWindow, esn, initialSeq,
  //   initialSeqHi, bind, remoteFamily, remoteAddr(16), remotePort, localTs, remoteTs, softBytes, hardBytes,
  //   softPackets, hardPackets })
  Napi::Value InstallSa(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "installSa(params)");
      return env.Undefined();
    }
    if (closed_) return env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k) -> double {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
    };
    esp::SaConfig c;
    c.inbound = o.Get("inbound").ToBoolean().Value();
    c.spi = uint32_t(num("spi"));
    c.encr = int(num("encr"));
    c.encrKeyBits = int(num("encrKeyBits"));
    c.integ = int(num("integ"));
    RawView ek, ik, ra;
    if (!GetRaw(env, o.Get("encrKey"), &ek) || !GetRaw(env, o.Get("integKey"), &ik) ||
        !GetRaw(env, o.Get("remoteAddr"), &ra) || ra.bytes < 16 || !ParsePrefixes(o.Get("localTs"), &c.localTs) ||
        !ParsePrefixes(o.Get("remoteTs"), &c.remoteTs)) {
      ThrowType(env, "installSa: bad keys, address or selectors");
      return env.Undefined();
    }
    c.encrKey = ek.data;
    c.encrKeyLen = ek.bytes;
    c.integKey = ik.data;
    c.integKeyLen = ik.bytes;
    c.replayWindow = o.Get("replayWindow").IsNumber() ? uint32_t(num("replayWindow")) : 1024;
    c.esn = o.Get("esn").ToBoolean().Value();
    c.initialSeq = uint32_t(num("initialSeq"));
    c.initialSeqHi = uint32_t(num("initialSeqHi"));
    c.softBytes = num("softBytes");
    c.hardBytes = num("hardBytes");
    c.softPackets = num("softPackets");
    c.hardPackets = num("hardPackets");
    const char* err = nullptr;
    Sa* sa = Sa::Create(c, &err);
    if (!sa) {
      Napi::Error::New(env, std::string("installSa: ") + err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int bind = int(num("bind"));
    sa->bindIndex = bind >= 0 && bind < int(binds_.size()) ? bind : -1;
    sa->remoteFamily = uint8_t(num("remoteFamily"));
    memcpy(sa->remoteAddr, ra.data, 16);
    sa->remotePort = uint16_t(num("remotePort"));
    auto out = std::make_unique<OutSa>();
    out->sa.reset(sa);
    // multi-queue: an outbound SA shared by several queues takes its sequence numbers from one
    // 8-aligned 8-byte cell of shared memory (optional `seqCell`, a BigUint64Array view)
    Napi::Value cell = o.Get("seqCell");
    RawView cv;
    if (!c.inbound && cell.IsObject() && GetRaw(env, cell, &cv) && cv.bytes >= 8 &&
        (reinterpret_cast<uintptr_t>(cv.data) & 7) == 0) {
      sa->seqCell = reinterpret_cast<uint64_t*>(cv.data);
      out->seqRef = Napi::Persistent(cell.As<Napi::Object>());
    }
    if (sa->bindIndex >= 0) {
      out->toLen = MakeSockaddr(&out->to, binds_[sa->bindIndex]->sockFamily, sa->remoteFamily, sa->remoteAddr,
                                sa->remotePort);
      if (out->toLen == 0) sa->bindIndex = -1;
    }
    auto& m = c.inbound ? inSas_ : outSas_;
    auto it = m.find(c.spi);
    if (it != m.end()) {
      Retire(std::move(it->second));
      it->second = std::move(out);
    } else {
      m.emplace(c.spi, std::move(out));
    }
    return Napi::Boolean::New(env, sa->bindIndex >= 0);
  }

  void Retire(std::unique_ptr<OutSa> sa) {
    if (depth_ > 0)
      graveyard_.push_back(std::move(sa));  // a batch may still hold a pointer to it
  }

  // removeSa(spi, inbound) -> boolean
  Napi::Value RemoveSa(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t spi = info[0].As<Napi::Number>().Uint32Value();
    auto& m = info[1].ToBoolean().Value() ? inSas_ : outSas_;
    auto it = m.find(spi);
    if (it == m.end()) return Napi::Boolean::New(env, false);
    Retire(std::move(it->second));
    m.erase(it);
    return Napi::Boolean::New(env, true);
  }

  // saCounters(spi, inbound, out: Float64Array(4 + 15)) -> boolean; out = bytes, packets, seq, 0, drops...
  Napi::Value SaCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 3 || !GetRaw(env, info[2], &r) || r.bytes < (4 + esp::kDropCount) * sizeof(double)) {
      ThrowType(env, "saCounters(spi, inbound, out)");
      return env.Undefined();
    }
    uint32_t spi = info[0].As<Napi::Number>().Uint32Value();
    auto& m = info[1].ToBoolean().Value() ? inSas_ : outSas_;
    auto it = m.find(spi);
    if (it == m.end()) return Napi::Boolean::New(env, false);
    double* out = reinterpret_cast<double*>(r.data);
    Sa* sa = it->second->sa.get();
    out[0] = sa->bytes;
    out[1] = sa->packets;
    out[2] = sa->seq();
    out[3] = 0;
    for (int i = 0; i < esp::kDropCount; i++) out[4 + i] = sa->drops[i];
    return Napi::Boolean::New(env, true);
  }

  // addRoute(family, addr(16), prefixLen, spi, sink)
  Napi::Value AddRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 5 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "addRoute(family, addr, len, spi, sink)");
      return env.Undefined();
    }
    if (closed_) return env.Undefined();
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if ((fam != 4 && fam != 6) || len > (fam == 4 ? 32u : 128u)) {
      ThrowType(env, "addRoute: bad prefix");
      return env.Undefined();
    }
    RouteTarget t;
    t.spi = info[3].As<Napi::Number>().Uint32Value();
    t.sink = info[4].As<Napi::Number>().Int32Value();
    (fam == 4 ? routes4_ : routes6_).Set(a.data, fam == 4 ? 4 : 16, len, t);
    return env.Undefined();
  }

  // removeRoute(family, addr, prefixLen, onlySink) -> boolean
  Napi::Value RemoveRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 4 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "removeRoute(family, addr, len, onlySink)");
      return env.Undefined();
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if ((fam != 4 && fam != 6) || len > (fam == 4 ? 32u : 128u)) return Napi::Boolean::New(env, false);
    RouteTable& rt = fam == 4 ? routes4_ : routes6_;
    size_t alen = fam == 4 ? 4 : 16;
    if (info[3].ToBoolean().Value()) {
      const RouteTarget* t = rt.Get(a.data, alen, len);
      if (!t || t->sink < 0) return Napi::Boolean::New(env, false);
    }
    return Napi::Boolean::New(env, rt.Remove(a.data, alen, len));
  }

  // lookupRoute(family, addr) -> [spi, sink] | null (tests)
  Napi::Value LookupRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 2 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "lookupRoute(family, addr)");
      return env.Undefined();
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    const RouteTarget* t = fam == 4 ? routes4_.Lookup(a.data, 4) : routes6_.Lookup(a.data, 16);
    if (!t) return env.Null();
    Napi::Array r = Napi::Array::New(env, 3);
    r.Set(0u, Napi::Number::New(env, t->spi));
    r.Set(1u, Napi::Number::New(env, t->sink));
    r.Set(2u, Napi::Number::New(env, t->ssl));
    return r;
  }

  // ------------------------------------------------------------------ JS -> wire / TUN

  // sendControl(bind, data, family, addr(16), port) -> boolean; prepends the non-ESP marker
  Napi::Value SendControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView d, a;
    if (info.Length() < 5 || !GetRaw(env, info[1], &d) || !GetRaw(env, info[3], &a) || a.bytes < 16) {
      ThrowType(env, "sendControl(bind, data, family, addr, port)");
      return env.Undefined();
    }
    int bi = info[0].As<Napi::Number>().Int32Value();
    if (closed_ || bi < 0 || bi >= int(binds_.size())) return Napi::Boolean::New(env, false);
    sockaddr_storage ss;
    socklen_t sl = MakeSockaddr(&ss, binds_[bi]->sockFamily, uint8_t(info[2].As<Napi::Number>().Uint32Value()), a.data,
                                uint16_t(info[4].As<Napi::Number>().Uint32Value()));
    if (sl == 0) return Napi::Boolean::New(env, false);
    static const uint8_t marker[kNonEspMarker] = {0, 0, 0, 0};
    iovec iov[2] = {{const_cast<uint8_t*>(marker), kNonEspMarker}, {d.data, d.bytes}};
    msghdr h{};
    h.msg_name = &ss;
    h.msg_namelen = sl;
    h.msg_iov = iov;
    h.msg_iovlen = 2;
    ssize_t r;
    do {
      r = sendmsg(binds_[bi]->fd, &h, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0) st()[kSendErrors] += 1;
    return Napi::Boolean::New(env, r >= 0);
  }

  // writeTun(buf, off, len): queues a copy; written when the queue fills or at flushTun()
  Napi::Value WriteTun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b;
    if (info.Length() < 3 || !GetRaw(env, info[0], &b)) {
      ThrowType(env, "writeTun(buf, off, len)");
      return env.Undefined();
    }
    uint32_t off = info[1].As<Napi::Number>().Uint32Value();
    uint32_t len = info[2].As<Napi::Number>().Uint32Value();
    if (closed_ || tunFd_ < 0) return Napi::Boolean::New(env, false);
    if (len == 0 || len > maxPacket_ || uint64_t(off) + len > b.bytes) {
      DropCount(esp::kNoRoom);
      return Napi::Boolean::New(env, false);
    }
    if (jsTunCount_ == kJsTunSlots) FlushJsTun();
    memcpy(jsTun_.data() + size_t(jsTunCount_) * maxPacket_, b.data + off, len);
    jsTunLen_[jsTunCount_++] = len;
    return Napi::Boolean::New(env, true);
  }

  Napi::Value FlushTun(const Napi::CallbackInfo& info) {
    if (!closed_) FlushJsTun();
    return info.Env().Undefined();
  }

  void FlushJsTun() {
    for (uint32_t i = 0; i < jsTunCount_; i++) WriteTunPacket(jsTun_.data() + size_t(i) * maxPacket_, jsTunLen_[i]);
    jsTunCount_ = 0;
  }

  // One packet to the TUN (a zero vnet header first when the TUN carries them).
  void WriteTunPacket(const uint8_t* p, size_t len) {
    ssize_t r;
    if (vnet_) {
      static const uint8_t zero[offload::kVnetHdrSize] = {0};
      iovec iov[2] = {{const_cast<uint8_t*>(zero), sizeof zero}, {const_cast<uint8_t*>(p), len}};
      do {
        r = writev(tunFd_, iov, 2);
      } while (r < 0 && errno == EINTR);
    } else {
      do {
        r = write(tunFd_, p, len);
      } while (r < 0 && errno == EINTR);
    }
    if (r < 0)
      st()[kTunWriteErrors] += 1;
    else
      st()[kTunTxPackets] += 1;
  }

  // ------------------------------------------------------------------ poll dispatch

  static void OnPollThunk(void* owner, int status, int events) {
    Bind* b = static_cast<Bind*>(owner);
    DataPlaneHandle* self = b->owner;
    if (self->closed_) return;
    Napi::HandleScope scope(self->Env());
    self->depth_++;
    if (b->index < 0)
      self->OnTunReadable(status);
    else
      self->OnUdpReadable(b, status);
    self->depth_--;
    if (self->depth_ == 0) {
      self->graveyard_.clear();
      self->sslGraveyard_.clear();
    }
  }

  // ------------------------------------------------------------------ outbound: TUN -> ESP

  uint8_t* TxSlot(uint32_t i) { return tx_.data() + size_t(i) * slot_; }

  void OnTunReadable(int status) {
    if (status < 0) {
      st()[kPollErrors] += 1;
      tunCtx_.poller.Rearm();
    }
    uint32_t budget = kReadBatch * kMaxRoundsPerWake;
    while (budget > 0 && !closed_) {
      if (txUsed_ + kMaxSegsPerRead > kTxSlots) FlushTx();
      ssize_t r;
      if (vnet_) {
        do {
          r = read(tunFd_, scratch_.data(), kSuperPacket);
        } while (r < 0 && errno == EINTR);
      } else {
        do {
          r = read(tunFd_, TxSlot(txUsed_) + kHeadroom, maxPacket_);
        } while (r < 0 && errno == EINTR);
      }
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) st()[kTunReadErrors] += 1;
        break;
      }
      budget--;
      if (vnet_) {
        ReadVnet(size_t(r));
      } else {
        st()[kTunRxPackets] += 1;
        uint32_t i = txUsed_++;
        Outbound(i, size_t(r));
      }
      if (txUsed_ >= kReadBatch) FlushTx();
    }
    FlushTx();
    DeliverJs();
  }

  // A read from a vnet-header TUN at scratch_: header, then one packet or a TSO super-packet.
  void ReadVnet(size_t n) {
    if (n < offload::kVnetHdrSize) {
      st()[kTunReadErrors] += 1;
      return;
    }
    offload::VnetHdr h;
    memcpy(&h, scratch_.data(), sizeof h);
    uint8_t* pkt = scratch_.data() + offload::kVnetHdrSize;
    size_t len = n - offload::kVnetHdrSize;
    uint8_t gso = h.gsoType & uint8_t(~offload::kGsoEcn);
    if (gso == offload::kGsoTcpv4 || gso == offload::kGsoTcpv6) {
      st()[kTsoSuperPackets] += 1;
      // the kernel leaves the TCP checksum partial; TcpSegment recomputes it per segment
      int segs = offload::TcpSegment(pkt, len, h.gsoSize, TxSlot(txUsed_) + kHeadroom, slot_, maxPacket_,
                                     segLens_.data(), kTxSlots - txUsed_);
      if (segs < 0) {
        DropCount(esp::kBadInner);
        return;
      }
      st()[kTunRxPackets] += segs;
      uint32_t first = txUsed_;
      txUsed_ += uint32_t(segs);
      for (int s = 0; s < segs; s++) Outbound(first + uint32_t(s), segLens_[s]);
      return;
    }
    if (gso != offload::kGsoNone) {
      DropCount(esp::kBadInner);  // UDP fragmentation offload etc.: not negotiated
      return;
    }
    if (h.flags & offload::kFlagNeedsCsum) offload::CompleteChecksum(pkt, len, h.csumStart, h.csumOffset);
    st()[kTunRxPackets] += 1;
    if (len > maxPacket_) {
      DropCount(esp::kNoRoom);
      return;
    }
    uint32_t i = txUsed_++;
    memcpy(TxSlot(i) + kHeadroom, pkt, len);
    Outbound(i, len);
  }

  void Outbound(uint32_t slot, size_t len) {
    uint8_t* base = TxSlot(slot);
    uint8_t* ip = base + kHeadroom;
    if (esp::InnerIpLength(ip, len) < 0) {
      DropCount(esp::kBadInner);
      return;
    }
    bool v6 = (ip[0] >> 4) == 6;
    const RouteTarget* rt = v6 ? routes6_.Lookup(ip + 24, 16) : routes4_.Lookup(ip + 16, 4);
    if (!rt) {
      DropCount(esp::kNoRoute);
      return;
    }
    if (rt->ssl >= 0) {
      OutboundSsl(slot, len, uint32_t(rt->ssl));
      return;
    }
    if (rt->sink >= 0) {
      ToSink(rt->sink, ip, len);
      return;
    }
    auto it = outSas_.find(rt->spi);
    if (it == outSas_.end()) {
      DropCount(esp::kNoSa);
      return;
    }
    OutSa* out = it->second.get();
    Sa* sa = out->sa.get();
    if (!sa->PolicyAllows(ip, false)) {
      sa->drops[esp::kPolicy] += 1;
      DropCount(esp::kPolicy);
      return;
    }
    if (sa->bindIndex < 0) {
      sa->drops[esp::kNoBind] += 1;
      DropCount(esp::kNoBind);
      return;
    }
    if (len > maxPacket_) {
      sa->drops[esp::kNoRoom] += 1;
      DropCount(esp::kNoRoom);
      return;
    }
    Span span;
    int r = sa->Encap(base, kHeadroom, len, slot_, &span);
    if (span.event) QueueEvent(sa, span.event);
    if (r != esp::kNone) {
      DropCount(r);
      return;
    }
    st()[kEspTxPackets] += 1;
    TxEntry& e = txEntries_[txCount_++];
    e.data = base + span.off;
    e.len = uint32_t(span.len);
    e.bind = sa->bindIndex;
    e.group = out;
    e.to = &out->to;
    e.toLen = out->toLen;
  }

  // Sends the queued ESP datagrams: per bind, one sendmmsg; GSO groups equal-size runs per SA.
  void FlushTx() {
    if (txCount_ > 0 && !closed_) {
      for (size_t b = 0; b < binds_.size(); b++) SendBind(int(b));
    }
    txCount_ = 0;
    txUsed_ = 0;
  }

  void SendBind(int b) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < txCount_; i++)
      if (txEntries_[i].bind == b) txIdx_[m++] = i;
    uint32_t x = 0, k = 0, iovUsed = 0;
    size_t ctrlUsed = 0;
    while (x < m) {
      const TxEntry& e = txEntries_[txIdx_[x]];
      uint32_t n = 1;
      size_t bytes = e.len;
      if (gso_ && !gsoBroken_) {
        // a GSO run: same SA (so same destination), same size; only the last may be shorter
        while (x + n < m && n < kGsoMaxSegs) {
          const TxEntry& f = txEntries_[txIdx_[x + n]];
          if (f.group != e.group || f.len > e.len || bytes + f.len > kGsoMaxBytes) break;
          n++;
          bytes += f.len;
          if (f.len < e.len) break;
        }
      }
      msghdr& h = txMsgs_[k].msg_hdr;
      memset(&h, 0, sizeof h);
      h.msg_name = const_cast<sockaddr_storage*>(e.to);
      h.msg_namelen = e.toLen;
      h.msg_iov = &txIov_[iovUsed];
      h.msg_iovlen = n;
      for (uint32_t y = 0; y < n; y++) {
        const TxEntry& f = txEntries_[txIdx_[x + y]];
        txIov_[iovUsed + y].iov_base = f.data;
        txIov_[iovUsed + y].iov_len = f.len;
      }
      iovUsed += n;
      if (n > 1) {
        h.msg_control = txCtrl_.data() + ctrlUsed;
        h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        cmsghdr* cm = CMSG_FIRSTHDR(&h);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = uint16_t(e.len);
        memcpy(CMSG_DATA(cm), &gs, sizeof gs);
        ctrlUsed += CMSG_SPACE(sizeof(uint16_t));
        st()[kGsoSends] += 1;
      }
      k++;
      x += n;
    }
    if (k > 0) SendMsgs(b, k);
  }

  void SendMsgs(int b, uint32_t k) {
    int fd = binds_[b]->fd;
    uint32_t p = 0;
    int retries = 0;
    while (p < k) {
      int r = sendmmsg(fd, &txMsgs_[p], k - p, MSG_DONTWAIT);
      if (r > 0) {
        for (int j = 0; j < r; j++) {
          st()[kUdpTxDatagrams] += double(txMsgs_[p + j].msg_hdr.msg_iovlen);
          st()[kUdpSendMsgs] += 1;
        }
        p += uint32_t(r);
        continue;
      }
      int e = errno;
      if (r < 0 && e == EINTR) continue;
      st()[kSendErrors] += 1;
      if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)) break;  // queue full: drop the rest
      if (r < 0 && IsIcmpErrno(e) && retries++ < 4) continue;  // the error was for an earlier datagram
      if (r < 0 && (e == EIO || e == EINVAL) && txMsgs_[p].msg_hdr.msg_controllen > 0) gsoBroken_ = true;
      p++;  // refused (EMSGSIZE, EPERM...): skip it
    }
  }

  void ToSink(int32_t sink, const uint8_t* p, size_t len) {
    if (len > maxPacket_) {
      DropCount(esp::kNoRoom);
      return;
    }
    if (sinkCount_ == sinkCap_ || size_t(sinkCount_ + 1) * maxPacket_ > sinkBuf_.count) DeliverJs();
    if (closed_ || size_t(sinkCount_ + 1) * maxPacket_ > sinkBuf_.count) {
      DropCount(esp::kNoRoom);
      return;
    }
    uint32_t off = sinkCount_ * maxPacket_;
    memcpy(sinkBuf_.ptr + off, p, len);
    uint32_t* m = sinkMeta_.ptr + sinkCount_ * kSinkStride;
    m[0] = off;
    m[1] = uint32_t(len);
    m[2] = uint32_t(sink);
    sinkCount_++;
    st()[kSinkPackets] += 1;
  }

  void QueueEvent(Sa* sa, int bits) {
    if (evCount_ == evCap_) DeliverJs();
    if (evCount_ == evCap_) return;
    uint32_t* m = events_.ptr + evCount_ * kEventStride;
    m[0] = sa->spi();
    m[1] = sa->inbound() ? 0 : 1;
    m[2] = uint32_t(bits);
    evCount_++;
  }

  // One JS callback for everything collected in this batch.
  void DeliverJs() {
    DeliverSsl();
    if (ctlCount_ == 0 && sinkCount_ == 0 && evCount_ == 0) return;
    if (closed_ || cb_.IsEmpty()) {
      ctlCount_ = sinkCount_ = evCount_ = 0;
      return;
    }
    napi_env env = Env();
    napi_value argv[3];
    napi_create_uint32(env, ctlCount_, &argv[0]);
    napi_create_uint32(env, sinkCount_, &argv[1]);
    napi_create_uint32(env, evCount_, &argv[2]);
    ctlCount_ = sinkCount_ = evCount_ = 0;
    ctlBytes_ = 0;
    st()[kJsCallbacks] += 1;
    CallFromLoop(env, async_, Value(), cb_.Value(), 3, argv);
  }

  // ------------------------------------------------------------------ inbound: UDP -> TUN

  void DrainErrors(int fd) { st()[kIcmpErrors] += DrainErrorQueue(fd); }

  void OnUdpReadable(Bind* b, int status) {
    if (status < 0) {
      st()[kPollErrors] += 1;
      DrainErrors(b->fd);
      b->poller.Rearm();
    }
    int errors = 0;
    for (int round = 0; round < kMaxRoundsPerWake && !closed_; round++) {
      for (uint32_t i = 0; i < kReadBatch; i++) rxMsgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      int r = recvmmsg(b->fd, rxMsgs_.data(), kReadBatch, MSG_DONTWAIT, nullptr);
      if (r < 0) {
        int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) break;
        if (IsIcmpErrno(e) && ++errors <= 16) {
          st()[kIcmpErrors] += 1;
          DrainErrors(b->fd);
          continue;
        }
        break;
      }
      st()[kUdpRxDatagrams] += r;
      for (int j = 0; j < r && !closed_; j++) {
        const mmsghdr& m = rxMsgs_[j];
        if ((m.msg_hdr.msg_flags & MSG_TRUNC) || m.msg_len > maxPacket_ + kTailroom) {
          st()[kTruncated] += 1;
          DropCount(esp::kShort);
          continue;
        }
        if (b->ssl)
          InboundSsl(b, uint32_t(j), m.msg_len);
        else
          Inbound(b, uint32_t(j), m.msg_len);
      }
      FlushTunOut();
      DeliverJs();
      if (r < int(kReadBatch)) break;
    }
  }

  void Inbound(Bind* b, uint32_t j, size_t len) {
    uint8_t* base = rx_.data() + size_t(j) * slot_;
    uint8_t* p = base + kHeadroom;
    if (len == 1 && p[0] == kNatKeepalive) {
      st()[kNatKeepalives] += 1;
      return;
    }
    if (len >= kNonEspMarker && Rd32(p) == 0) {
      ToControl(b, j, p + kNonEspMarker, len - kNonEspMarker);
      return;
    }
    if (len < esp::kHeaderSize) {
      DropCount(esp::kShort);
      return;
    }
    auto it = inSas_.find(Rd32(p));
    if (it == inSas_.end()) {
      DropCount(esp::kNoSa);  // RFC 4303 §3.4.2: audit only, no INVALID_SPI notify (as libipsec)
      return;
    }
    Sa* sa = it->second->sa.get();
    Span span;
    int r = sa->Decap(base, kHeadroom, len, &span);
    if (span.event) QueueEvent(sa, span.event);
    if (r != esp::kNone) {
      DropCount(r);
      return;
    }
    st()[kEspRxPackets] += 1;
    TunOut& t = tunOut_[tunOutCount_++];
    t.data = base + span.off;
    t.len = uint32_t(span.len);
  }

  void ToControl(Bind* b, uint32_t j, const uint8_t* p, size_t len) {
    if (ctlCount_ == ctlCap_ || ctlBytes_ + len > ctlBuf_.count) DeliverJs();
    if (closed_ || ctlBytes_ + len > ctlBuf_.count) {
      DropCount(esp::kNoRoom);
      return;
    }
    memcpy(ctlBuf_.ptr + ctlBytes_, p, len);
    uint32_t* m = ctlMeta_.ptr + ctlCount_ * kCtlStride;
    m[0] = uint32_t(ctlBytes_);
    m[1] = uint32_t(len);
    m[2] = uint32_t(b->index);
    StoreEndpoint(&rxAddr_[j], &m[3], ctlAddr_.ptr + ctlCount_ * 16, &m[4]);
    ctlBytes_ += len;
    ctlCount_++;
    st()[kControlPackets] += 1;
  }

  void FlushTunOut() {
    if (tunFd_ < 0) {
      tunOutCount_ = 0;
      return;
    }
    if (!gro_) {
      for (uint32_t i = 0; i < tunOutCount_; i++) WriteTunPacket(tunOut_[i].data, tunOut_[i].len);
      tunOutCount_ = 0;
      return;
    }
    offload::Coalescer& c = *coalescer_;
    for (uint32_t i = 0; i < tunOutCount_; i++) {
      const TunOut& t = tunOut_[i];
      if (c.Pending() && c.Append(t.data, t.len)) continue;
      if (c.Pending()) WriteCoalesced();
      if (!c.Start(t.data, t.len)) WriteTunPacket(t.data, t.len);
    }
    if (c.Pending()) WriteCoalesced();
    tunOutCount_ = 0;
  }

  void WriteCoalesced() {
    size_t n = 0;
    uint32_t segs = 0;
    const uint8_t* d = coalescer_->Finish(&n, &segs);
    ssize_t r;
    do {
      r = write(tunFd_, d, n);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      st()[kTunWriteErrors] += 1;
      return;
    }
    st()[kTunTxPackets] += segs;
    if (segs > 1) {
      st()[kGroWrites] += 1;
      st()[kGroSegments] += segs;
    }
  }

  // ------------------------------------------------------------------ SSL VPN (OpenVPN data channel)

  double NowMs() const { return loop_ ? double(uv_now(loop_)) : 0; }

  SslPeer* FindPeer(uint32_t peerId) {
    auto it = sslPeers_.find(peerId);
    return it == sslPeers_.end() ? nullptr : it->second.get();
  }

  void RetireSsl(std::unique_ptr<SslPeer> p) {
    if (depth_ > 0) sslGraveyard_.push_back(std::move(p));  // a batch may still point at it
  }

  // attachSsl(fd) -> bind index; may be called after start (polling starts at once)
  Napi::Value AttachSsl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "attachSsl(fd) before close");
      return env.Undefined();
    }
    auto b = std::make_unique<Bind>();
    b->owner = this;
    b->index = int(binds_.size());
    b->fd = info[0].As<Napi::Number>().Int32Value();
    b->ssl = true;
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(b->fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) {
      ThrowErrno(env, "getsockname", errno);
      return env.Undefined();
    }
    b->sockFamily = ss.ss_family;
    if (started_) {
      uv_loop_t* loop = nullptr;
      napi_get_uv_event_loop(env, &loop);
      int rc = b->poller.Start(loop, b->fd, b.get(), &DataPlaneHandle::OnPollThunk);
      if (rc != 0) {
        ThrowErrno(env, "uv_poll_start", -rc);
        return env.Undefined();
      }
    }
    binds_.push_back(std::move(b));
    return Napi::Number::New(env, binds_.size() - 1);
  }

  static void OnSslDetached(void*) {}

  // detachSsl(index): stops polling the socket (the caller closes it afterwards); sessions on it
  // then drop kNoBind until they are removed.
  Napi::Value DetachSsl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int bi = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    if (bi < 0 || bi >= int(binds_.size()) || !binds_[bi]->ssl) return Napi::Boolean::New(env, false);
    Bind* b = binds_[bi].get();
    if (!closed_) b->poller.Close(&DataPlaneHandle::OnSslDetached);
    b->fd = -1;
    return Napi::Boolean::New(env, true);
  }

  // setSslHandler({ buf, meta, addr }, cb(count)): where datagrams and plaintext for JS go
  Napi::Value SetSslHandler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      ThrowType(env, "setSslHandler({ buf, meta, addr }, cb)");
      return env.Undefined();
    }
    Napi::Object o = info[0].As<Napi::Object>();
    sslBuf_.Release();
    sslMeta_.Release();
    sslAddr_.Release();
    if (!sslBuf_.Pin(env, o.Get("buf")) || !sslMeta_.Pin(env, o.Get("meta")) || !sslAddr_.Pin(env, o.Get("addr"))) {
      ThrowType(env, "setSslHandler: bad buffers");
      return env.Undefined();
    }
    sslCap_ = uint32_t(std::min<size_t>(sslMeta_.count / kSslStride, sslAddr_.count / 16));
    sslCount_ = 0;
    sslBytes_ = 0;
    sslCb_ = Napi::Persistent(info[1].As<Napi::Function>());
    return env.Undefined();
  }

  bool SetPeerRemote(SslPeer* p, int bind, uint8_t family, const uint8_t* addr, uint16_t port) {
    p->bind = -1;
    p->toLen = 0;
    if (bind < 0 || bind >= int(binds_.size()) || !binds_[bind]->ssl) return false;
    p->toLen = MakeSockaddr(&p->to, binds_[bind]->sockFamily, family, addr, port);
    if (p->toLen == 0) return false;
    p->bind = bind;
    return true;
  }

  // installSslSession(peerId, bind, family, addr(16), port, compression, clientNet(4), clientLen,
  //   serverAddr(4)) -> boolean (remote usable); replaces a session with the same peer-id
  Napi::Value InstallSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a, net, srv;
    if (info.Length() < 9 || !info[0].IsNumber() || !GetRaw(env, info[3], &a) || a.bytes < 16 ||
        !GetRaw(env, info[6], &net) || net.bytes < 4 || !GetRaw(env, info[8], &srv) || srv.bytes < 4) {
      ThrowType(env, "installSslSession(peerId, bind, family, addr, port, comp, clientNet, clientLen, serverAddr)");
      return env.Undefined();
    }
    if (closed_) return Napi::Boolean::New(env, false);
    uint32_t peerId = info[0].As<Napi::Number>().Uint32Value();
    if (peerId > 0xffffff) {
      ThrowType(env, "installSslSession: peer-id is 24 bits");
      return env.Undefined();
    }
    auto p = std::make_unique<SslPeer>();
    p->s.reset(new ovpn::Session(peerId));
    p->s->setCompression(info[5].As<Napi::Number>().Int32Value());
    memcpy(p->clientNet, net.data, 4);
    p->clientLen = uint8_t(std::min<uint32_t>(32, info[7].As<Napi::Number>().Uint32Value()));
    memcpy(p->serverAddr, srv.data, 4);
    bool ok = SetPeerRemote(p.get(), info[1].As<Napi::Number>().Int32Value(), uint8_t(info[2].As<Napi::Number>().Uint32Value()),
                            a.data, uint16_t(info[4].As<Napi::Number>().Uint32Value()));
    auto it = sslPeers_.find(peerId);
    if (it != sslPeers_.end()) {
      RetireSsl(std::move(it->second));
      it->second = std::move(p);
    } else {
      sslPeers_.emplace(peerId, std::move(p));
    }
    return Napi::Boolean::New(env, ok);
  }

  // updateSslSession(peerId, what, ...): 'remote' (bind, family, addr, port) after a float,
  // 'vaddr' (addr(4) | null), 'comp' (mode) -> boolean
  Napi::Value UpdateSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString()) {
      ThrowType(env, "updateSslSession(peerId, what, ...)");
      return env.Undefined();
    }
    SslPeer* p = FindPeer(info[0].As<Napi::Number>().Uint32Value());
    if (!p || closed_) return Napi::Boolean::New(env, false);
    std::string what = info[1].As<Napi::String>().Utf8Value();
    if (what == "remote") {
      // remote: bind, family, addr, port are info[2..5]
      RawView ad;
      if (info.Length() < 6 || !GetRaw(env, info[4], &ad) || ad.bytes < 16) {
        ThrowType(env, "updateSslSession(peerId, 'remote', bind, family, addr, port)");
        return env.Undefined();
      }
      return Napi::Boolean::New(env, SetPeerRemote(p, info[2].As<Napi::Number>().Int32Value(),
                                                   uint8_t(info[3].As<Napi::Number>().Uint32Value()), ad.data,
                                                   uint16_t(info[5].As<Napi::Number>().Uint32Value())));
    }
    if (what == "vaddr") {
      RawView a;
      if (info[2].IsNull() || info[2].IsUndefined()) {
        p->hasVaddr = false;
        return Napi::Boolean::New(env, true);
      }
      if (!GetRaw(env, info[2], &a) || a.bytes < 4) {
        ThrowType(env, "updateSslSession(peerId, 'vaddr', addr4 | null)");
        return env.Undefined();
      }
      memcpy(p->vaddr, a.data, 4);
      p->hasVaddr = true;
      return Napi::Boolean::New(env, true);
    }
    if (what == "comp") {
      p->s->setCompression(info[2].As<Napi::Number>().Int32Value());
      return Napi::Boolean::New(env, true);
    }
    ThrowType(env, "updateSslSession: what is 'remote', 'vaddr' or 'comp'");
    return env.Undefined();
  }

  // setSslKey(peerId, keyId, cipher, encKey, encIv, decKey, decIv) -> boolean (false: no session)
  Napi::Value SetSslKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView ek, ei, dk, di;
    if (info.Length() < 7 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !GetRaw(env, info[3], &ek) ||
        !GetRaw(env, info[4], &ei) || !GetRaw(env, info[5], &dk) || !GetRaw(env, info[6], &di) ||
        ei.bytes < ovpn::kImplicitIv || di.bytes < ovpn::kImplicitIv) {
      ThrowType(env, "setSslKey(peerId, keyId, cipher, encKey, encIv(8), decKey, decIv(8))");
      return env.Undefined();
    }
    SslPeer* p = FindPeer(info[0].As<Napi::Number>().Uint32Value());
    if (!p || closed_) return Napi::Boolean::New(env, false);
    ovpn::KeyConfig k;
    k.keyId = info[1].As<Napi::Number>().Int32Value();
    k.cipher = info[2].As<Napi::Number>().Int32Value();
    k.encKey = ek.data;
    k.encKeyLen = ek.bytes;
    k.encIv = ei.data;
    k.decKey = dk.data;
    k.decKeyLen = dk.bytes;
    k.decIv = di.data;
    if (info.Length() > 7 && info[7].IsNumber()) k.initialSendPacketId = info[7].As<Napi::Number>().Uint32Value();
    const char* err = nullptr;
    if (!p->s->InstallKey(k, &err)) {
      Napi::Error::New(env, std::string("setSslKey: ") + err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value RetireSslKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    SslPeer* p = info.Length() > 1 && info[0].IsNumber() ? FindPeer(info[0].As<Napi::Number>().Uint32Value()) : nullptr;
    if (!p || !info[1].IsNumber()) return Napi::Boolean::New(env, false);
    p->s->RetireKey(info[1].As<Napi::Number>().Int32Value());
    return Napi::Boolean::New(env, true);
  }

  // removeSslSession(peerId) -> boolean; its routes stay (packets then drop NO_SA) until removed
  Napi::Value RemoveSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
    auto it = sslPeers_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == sslPeers_.end()) return Napi::Boolean::New(env, false);
    RetireSsl(std::move(it->second));
    sslPeers_.erase(it);
    return Napi::Boolean::New(env, true);
  }

  // addSslRoute(family, addr(16), prefixLen, peerId)
  Napi::Value AddSslRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 4 || !GetRaw(env, info[1], &a) || a.bytes < 16 || !info[3].IsNumber()) {
      ThrowType(env, "addSslRoute(family, addr, len, peerId)");
      return env.Undefined();
    }
    if (closed_) return env.Undefined();
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    uint32_t peerId = info[3].As<Napi::Number>().Uint32Value();
    if ((fam != 4 && fam != 6) || len > (fam == 4 ? 32u : 128u) || peerId > 0xffffff) {
      ThrowType(env, "addSslRoute: bad prefix or peer-id");
      return env.Undefined();
    }
    RouteTarget t;
    t.ssl = int32_t(peerId);
    (fam == 4 ? routes4_ : routes6_).Set(a.data, fam == 4 ? 4 : 16, len, t);
    return env.Undefined();
  }

  // removeSslRoute(family, addr, prefixLen) -> boolean (only removes an SSL route)
  Napi::Value RemoveSslRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 3 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "removeSslRoute(family, addr, len)");
      return env.Undefined();
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if ((fam != 4 && fam != 6) || len > (fam == 4 ? 32u : 128u)) return Napi::Boolean::New(env, false);
    RouteTable& rt = fam == 4 ? routes4_ : routes6_;
    size_t alen = fam == 4 ? 4 : 16;
    const RouteTarget* t = rt.Get(a.data, alen, len);
    if (!t || t->ssl < 0) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, rt.Remove(a.data, alen, len));
  }

  // sslCounters(peerId, out: Float64Array(kSslCounterHead + kResultCount)) -> boolean
  //   rxPackets, rxBytes, txPackets, txBytes, pingsIn, pingsOut, msSinceRx, msSinceTx, sendKeyId,
  //   sendPacketId, compression, bind, drops by ovpn::Result...
  Napi::Value SslCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 2 || !info[0].IsNumber() || !GetRaw(env, info[1], &r) ||
        r.bytes < (kSslCounterHead + ovpn::kResultCount) * sizeof(double)) {
      ThrowType(env, "sslCounters(peerId, out)");
      return env.Undefined();
    }
    SslPeer* p = FindPeer(info[0].As<Napi::Number>().Uint32Value());
    if (!p) return Napi::Boolean::New(env, false);
    double* o = reinterpret_cast<double*>(r.data);
    const ovpn::Counters& c = p->s->counters;
    double now = NowMs();
    o[0] = c.rxPackets;
    o[1] = c.rxBytes;
    o[2] = c.txPackets;
    o[3] = c.txBytes;
    o[4] = c.pingsIn;
    o[5] = c.pingsOut;
    o[6] = p->s->lastRxMs > 0 ? now - p->s->lastRxMs : -1;
    o[7] = p->s->lastTxMs > 0 ? now - p->s->lastTxMs : -1;
    o[8] = p->s->sendKeyId();
    o[9] = p->s->sendPacketId();
    o[10] = p->s->compression();
    o[11] = p->bind;
    for (int i = 0; i < ovpn::kResultCount; i++) o[kSslCounterHead + i] = c.drops[i];
    return Napi::Boolean::New(env, true);
  }

  // sslSend(peerId, buf, off, len, ping) -> boolean: encrypts one payload (an IP packet from JS, or
  // the ping magic) and sends it at once from the session's socket
  Napi::Value SslSend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b;
    if (info.Length() < 5 || !info[0].IsNumber() || !GetRaw(env, info[1], &b)) {
      ThrowType(env, "sslSend(peerId, buf, off, len, ping)");
      return env.Undefined();
    }
    uint32_t off = info[2].As<Napi::Number>().Uint32Value();
    uint32_t len = info[3].As<Napi::Number>().Uint32Value();
    bool ping = info[4].ToBoolean().Value();
    SslPeer* p = FindPeer(info[0].As<Napi::Number>().Uint32Value());
    if (!p || closed_) return Napi::Boolean::New(env, false);
    if (len == 0 || len > maxPacket_ || uint64_t(off) + len > b.bytes) {
      p->s->Drop(ovpn::kTooBig);
      return Napi::Boolean::New(env, false);
    }
    if (p->bind < 0 || binds_[p->bind]->fd < 0) {
      p->s->Drop(ovpn::kNoBind);
      return Napi::Boolean::New(env, false);
    }
    uint8_t* slot = sslTx_.data();
    memcpy(slot + kHeadroom, b.data + off, len);
    ovpn::Span span;
    if (p->s->Encrypt(slot, kHeadroom, len, kHeadroom + maxPacket_ + kTailroom, NowMs(), ping, &span) != ovpn::kIp) {
      st()[kSslDrops] += 1;
      return Napi::Boolean::New(env, false);
    }
    ssize_t r;
    do {
      r = sendto(binds_[p->bind]->fd, slot + span.off, span.len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&p->to), p->toLen);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      st()[kSendErrors] += 1;
      return Napi::Boolean::New(env, false);
    }
    st()[kSslTxPackets] += 1;
    st()[kUdpTxDatagrams] += 1;
    return Napi::Boolean::New(env, true);
  }

  // sslDecrypt(peerId, buf, off, len, span: Uint32Array(2)) -> ovpn::Result (-1: no session); in
  // place in the JS buffer. For JS decisions on packets the demux handed up (a float candidate).
  Napi::Value SslDecrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !info[0].IsNumber() || !GetRaw(env, info[1], &b) || !GetRaw(env, info[4], &s) || s.bytes < 8) {
      ThrowType(env, "sslDecrypt(peerId, buf, off, len, span)");
      return env.Undefined();
    }
    uint32_t off = info[2].As<Napi::Number>().Uint32Value();
    uint32_t len = info[3].As<Napi::Number>().Uint32Value();
    SslPeer* p = FindPeer(info[0].As<Napi::Number>().Uint32Value());
    if (!p || closed_) return Napi::Number::New(env, -1);
    if (uint64_t(off) + len > b.bytes) return Napi::Number::New(env, p->s->Drop(ovpn::kShort));
    ovpn::Span span;
    int r = p->s->Decrypt(b.data, off, len, NowMs(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  // TUN -> an SSL session: P_DATA_V2 in place in the tx slot, queued for the session's socket.
  void OutboundSsl(uint32_t slot, size_t len, uint32_t peerId) {
    SslPeer* p = FindPeer(peerId);
    if (!p) {
      DropCount(esp::kNoSa);
      return;
    }
    if (p->bind < 0 || binds_[p->bind]->fd < 0) {
      p->s->Drop(ovpn::kNoBind);
      st()[kSslDrops] += 1;
      return;
    }
    ovpn::Span span;
    if (len > maxPacket_ || p->s->Encrypt(TxSlot(slot), kHeadroom, len, slot_, NowMs(), false, &span) != ovpn::kIp) {
      if (len > maxPacket_) p->s->Drop(ovpn::kTooBig);
      st()[kSslDrops] += 1;
      return;
    }
    st()[kSslTxPackets] += 1;
    TxEntry& e = txEntries_[txCount_++];
    e.data = TxSlot(slot) + span.off;
    e.len = uint32_t(span.len);
    e.bind = p->bind;
    e.group = p;
    e.to = &p->to;
    e.toLen = p->toLen;
  }

  // SSL socket -> data opcodes of known sessions decrypted in place (to the TUN), the rest to JS.
  void InboundSsl(Bind* b, uint32_t j, size_t len) {
    uint8_t* base = rx_.data() + size_t(j) * slot_;
    uint8_t* p = base + kHeadroom;
    const sockaddr_storage& from = rxAddr_[j];
    SslPeer* peer = nullptr;
    uint8_t op = len > 0 ? p[0] >> ovpn::kOpShift : 0;
    if (op == ovpn::kOpDataV2 && len >= 4) {
      peer = FindPeer((uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]);
    } else if (op == ovpn::kOpDataV1) {
      // V1 has no peer-id (legacy clients): find the session by its endpoint
      for (auto& kv : sslPeers_) {
        if (kv.second->bind == b->index && SameEndpoint(kv.second->to, from)) {
          peer = kv.second.get();
          break;
        }
      }
    }
    // control packets, unknown peer-ids and packets from another endpoint (a float: JS decides)
    if (!peer || peer->bind != b->index || !SameEndpoint(peer->to, from)) {
      ToSslJs(b, j, p, len, ovpn::kPeerIdUnset, kSslDatagram);
      return;
    }
    ovpn::Span span;
    int r = peer->s->Decrypt(base, kHeadroom, len, NowMs(), &span);
    if (r > ovpn::kOcc) {
      st()[kSslDrops] += 1;
      return;
    }
    st()[kSslRxPackets] += 1;
    if (r == ovpn::kPing) return;
    if (r == ovpn::kOcc) {
      ToSslJs(b, j, base + span.off, span.len, peer->s->peerId(), kSslPlaintext);
      return;
    }
    const uint8_t* ip = base + span.off;
    if (span.len < 20 || (ip[0] >> 4) != 4) {
      peer->s->Drop(ovpn::kNotIpv4);  // we push no IPv6: the client's router solicitations end here
      st()[kSslDrops] += 1;
      return;
    }
    if (!peer->hasVaddr || memcmp(ip + 12, peer->vaddr, 4) != 0) {
      peer->s->Drop(ovpn::kBadSource);
      st()[kSslDrops] += 1;
      return;
    }
    if (InPrefix4(ip + 16, peer->clientNet, peer->clientLen) && memcmp(ip + 16, peer->serverAddr, 4) != 0) {
      ToSslJs(b, j, ip, span.len, peer->s->peerId(), kSslPlaintext);  // client-to-client: JS policy
      return;
    }
    TunOut& t = tunOut_[tunOutCount_++];
    t.data = base + span.off;
    t.len = uint32_t(span.len);
  }

  void ToSslJs(Bind* b, uint32_t j, const uint8_t* p, size_t len, uint32_t peerId, uint32_t kind) {
    if (sslCb_.IsEmpty()) {
      DropCount(esp::kNoRoom);
      return;
    }
    if (sslCount_ == sslCap_ || sslBytes_ + len > sslBuf_.count) DeliverSsl();
    if (closed_ || sslBytes_ + len > sslBuf_.count) {
      DropCount(esp::kNoRoom);
      return;
    }
    if (len > 0) memcpy(sslBuf_.ptr + sslBytes_, p, len);
    uint32_t* m = sslMeta_.ptr + sslCount_ * kSslStride;
    m[0] = uint32_t(sslBytes_);
    m[1] = uint32_t(len);
    m[2] = uint32_t(b->index);
    StoreEndpoint(&rxAddr_[j], &m[3], sslAddr_.ptr + sslCount_ * 16, &m[4]);
    m[5] = peerId;
    m[6] = kind;
    sslBytes_ += len;
    sslCount_++;
  }

  void DeliverSsl() {
    if (sslCount_ == 0) return;
    uint32_t n = sslCount_;
    sslCount_ = 0;
    sslBytes_ = 0;
    if (closed_ || sslCb_.IsEmpty()) return;
    st()[kJsCallbacks] += 1;
    CallFromLoop(Env(), async_, Value(), sslCb_.Value(), n);
  }

  // ------------------------------------------------------------------ close

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closed_) return info.Env().Undefined();
    closed_ = true;
    int pending = 0;
    if (tunCtx_.poller.Close(&DataPlaneHandle::OnPollClosed)) pending++;
    for (auto& b : binds_)
      if (b->poller.Close(&DataPlaneHandle::OnPollClosed)) pending++;
    closing_ = pending;
    for (auto& kv : inSas_) Retire(std::move(kv.second));
    for (auto& kv : outSas_) Retire(std::move(kv.second));
    inSas_.clear();
    outSas_.clear();
    routes4_.Clear();
    routes6_.Clear();
    for (auto& kv : sslPeers_) RetireSsl(std::move(kv.second));
    sslPeers_.clear();
    sslCount_ = 0;
    jsTunCount_ = 0;
    if (ownsTunFd_ && tunFd_ >= 0) {
      close(tunFd_);  // uv_close already removed it from epoll
    }
    tunFd_ = -1;
    if (pending == 0 && started_) Unref();
    return info.Env().Undefined();
  }

  static void OnPollClosed(void* owner) {
    Bind* b = static_cast<Bind*>(owner);
    DataPlaneHandle* self = b->owner;
    if (--self->closing_ == 0) {
      Napi::HandleScope scope(self->Env());
      if (!self->cb_.IsEmpty()) self->cb_.Reset();
      if (self->async_) {
        napi_async_destroy(self->Env(), self->async_);
        self->async_ = nullptr;
      }
      self->Unref();
    }
  }

  struct TunOut {
    uint8_t* data;
    uint32_t len;
  };

  Pinned<double> stats_;
  Pinned<uint8_t> ctlBuf_;
  Pinned<uint32_t> ctlMeta_;
  Pinned<uint8_t> ctlAddr_;
  Pinned<uint8_t> sinkBuf_;
  Pinned<uint32_t> sinkMeta_;
  Pinned<uint32_t> events_;
  uint32_t ctlCap_ = 0, sinkCap_ = 0, evCap_ = 0;
  uint32_t ctlCount_ = 0, sinkCount_ = 0, evCount_ = 0;
  size_t ctlBytes_ = 0;
  uint32_t maxPacket_ = 1500;
  size_t slot_ = 0;

  int tunFd_ = -1;
  bool ownsTunFd_ = false;
  bool vnet_ = false;
  bool gso_ = false, gsoBroken_ = false, gro_ = false;
  Bind tunCtx_;
  std::vector<std::unique_ptr<Bind>> binds_;
  bool started_ = false, closed_ = false;
  int polls_ = 0, closing_ = 0, depth_ = 0;

  std::unordered_map<uint32_t, std::unique_ptr<OutSa>> inSas_, outSas_;
  std::vector<std::unique_ptr<OutSa>> graveyard_;
  std::unordered_map<uint32_t, std::unique_ptr<SslPeer>> sslPeers_;
  std::vector<std::unique_ptr<SslPeer>> sslGraveyard_;
  Pinned<uint8_t> sslBuf_;
  Pinned<uint32_t> sslMeta_;
  Pinned<uint8_t> sslAddr_;
  uint32_t sslCap_ = 0, sslCount_ = 0;
  size_t sslBytes_ = 0;
  Napi::FunctionReference sslCb_;
  uv_loop_t* loop_ = nullptr;
  std::vector<uint8_t> sslTx_;
  RouteTable routes4_, routes6_;

  std::vector<uint8_t> tx_;
  std::vector<TxEntry> txEntries_;
  std::vector<uint32_t> txIdx_;
  uint32_t txUsed_ = 0, txCount_ = 0;
  std::vector<mmsghdr> txMsgs_;
  std::vector<iovec> txIov_;
  std::vector<uint8_t> txCtrl_;
  std::vector<uint8_t> rx_;
  std::vector<mmsghdr> rxMsgs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_storage> rxAddr_;
  std::vector<TunOut> tunOut_;
  uint32_t tunOutCount_ = 0;
  std::vector<uint8_t> jsTun_;
  std::vector<uint32_t> jsTunLen_;
  uint32_t jsTunCount_ = 0;
  std::vector<uint8_t> scratch_;
  std::vector<uint8_t> groBuf_;
  std::unique_ptr<offload::Coalescer> coalescer_;
  std::vector<uint32_t> segLens_;

  Napi::FunctionReference cb_;
  napi_async_context async_ = nullptr;
};

// ------------------------------------------------------------------ single-SA core for tests/bench

// new EspCore(params like installSa) ; encap(buf, off, len, limit, span: Uint32Array(3)) -> drop;
// decap(buf, off, len, span) -> drop; counters(out: Float64Array(4 + 15)); encapBatch/decapBatch for bench.
class EspCore : public Napi::ObjectWrap<EspCore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EspCore",
                       {
                           InstanceMethod<&EspCore::Encap>("encap"),
                           InstanceMethod<&EspCore::Decap>("decap"),
                           InstanceMethod<&EspCore::EncapBatch>("encapBatch"),
                           InstanceMethod<&EspCore::DecapBatch>("decapBatch"),
                           InstanceMethod<&EspCore::Counters>("counters"),
                       });
  }

  explicit EspCore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EspCore>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "EspCore(params)");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k) -> double {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
    };
    esp::SaConfig c;
    c.inbound = o.Get("inbound").ToBoolean().Value();
    c.spi = uint32_t(num("spi"));
    c.encr = int(num("encr"));
    c.encrKeyBits = int(num("encrKeyBits"));
    c.integ = int(num("integ"));
    RawView ek, ik;
    if (!GetRaw(env, o.Get("encrKey"), &ek) || !GetRaw(env, o.Get("integKey"), &ik) ||
        !ParsePrefixes(o.Get("localTs"), &c.localTs) || !ParsePrefixes(o.Get("remoteTs"), &c.remoteTs)) {
      ThrowType(env, "EspCore: bad keys or selectors");
      return;
    }
    c.encrKey = ek.data;
    c.encrKeyLen = ek.bytes;
    c.integKey = ik.data;
    c.integKeyLen = ik.bytes;
    c.replayWindow = o.Get("replayWindow").IsNumber() ? uint32_t(num("replayWindow")) : 1024;
    c.esn = o.Get("esn").ToBoolean().Value();
    c.initialSeq = uint32_t(num("initialSeq"));
    c.initialSeqHi = uint32_t(num("initialSeqHi"));
    c.softBytes = num("softBytes");
    c.hardBytes = num("hardBytes");
    c.softPackets = num("softPackets");
    c.hardPackets = num("hardPackets");
    const char* err = nullptr;
    sa_.reset(Sa::Create(c, &err));
    if (!sa_) Napi::Error::New(env, std::string("EspCore: ") + err).ThrowAsJavaScriptException();
  }

 private:
  Napi::Value Encap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[4], &s) || s.bytes < 12) {
      ThrowType(env, "encap(buf, off, len, limit, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    size_t limit = std::min<size_t>(info[3].As<Napi::Number>().Uint32Value(), b.bytes);
    if (off + len > limit) return Napi::Number::New(env, esp::kNoRoom);
    Span span;
    int r = sa_->Encap(b.data, off, len, limit, &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    so[2] = uint32_t(span.event);
    return Napi::Number::New(env, r);
  }

  Napi::Value Decap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 4 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[3], &s) || s.bytes < 12) {
      ThrowType(env, "decap(buf, off, len, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    if (off + len > b.bytes) return Napi::Number::New(env, esp::kShort);
    Span span;
    int r = sa_->Decap(b.data, off, len, &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    so[2] = uint32_t(span.event);
    return Napi::Number::New(env, r);
  }

  // encapBatch(buf, off: Uint32Array, len: Uint32Array, count, slotSize) -> packets sealed
  // (in place; off/len are updated to the ESP packets)
  Napi::Value EncapBatch(const Napi::CallbackInfo& info) { return Batch(info, true); }
  Napi::Value DecapBatch(const Napi::CallbackInfo& info) { return Batch(info, false); }

  Napi::Value Batch(const Napi::CallbackInfo& info, bool enc) {
    Napi::Env env = info.Env();
    RawView b, o, l;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[1], &o) || !GetRaw(env, info[2], &l)) {
      ThrowType(env, "encapBatch/decapBatch(buf, off, len, count, slotSize)");
      return env.Undefined();
    }
    uint32_t* off = reinterpret_cast<uint32_t*>(o.data);
    uint32_t* len = reinterpret_cast<uint32_t*>(l.data);
    uint32_t count = std::min<uint32_t>(info[3].As<Napi::Number>().Uint32Value(), uint32_t(std::min(o.bytes, l.bytes) / 4));
    size_t slot = info[4].As<Napi::Number>().Uint32Value();
    uint32_t ok = 0;
    for (uint32_t i = 0; i < count; i++) {
      size_t end = (off[i] / slot + 1) * slot;
      if (end > b.bytes || off[i] + size_t(len[i]) > end) continue;
      Span span;
      int r = enc ? sa_->Encap(b.data, off[i], len[i], end, &span) : sa_->Decap(b.data, off[i], len[i], &span);
      if (r != esp::kNone) continue;
      off[i] = uint32_t(span.off);
      len[i] = uint32_t(span.len);
      ok++;
    }
    return Napi::Number::New(env, ok);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r) || r.bytes < (4 + esp::kDropCount) * sizeof(double)) {
      ThrowType(env, "counters(out)");
      return env.Undefined();
    }
    double* out = reinterpret_cast<double*>(r.data);
    out[0] = sa_->bytes;
    out[1] = sa_->packets;
    out[2] = sa_->seq();
    out[3] = (sa_->softReached ? 1 : 0) | (sa_->hardReached ? 2 : 0) | (sa_->seqExhausted ? 4 : 0);
    for (int i = 0; i < esp::kDropCount; i++) out[4 + i] = sa_->drops[i];
    return env.Undefined();
  }

  std::unique_ptr<Sa> sa_;
};


// ------------------------------------------------------------------ one OpenVPN session for tests/bench

// new OvpnCore(peerId, replayBacktrackMs); setKey(keyId, cipher, encKey, encIv, decKey, decIv,
// initialSendPacketId); retireKey(keyId); setCompression(mode); compression();
// encrypt(buf, off, len, limit, nowMs, ping, span: Uint32Array(2)) -> Result;
// decrypt(buf, off, len, nowMs, span) -> Result; counters(out: Float64Array(6 + kResultCount))
class OvpnCore : public Napi::ObjectWrap<OvpnCore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "OvpnCore",
                       {
                           InstanceMethod<&OvpnCore::SetKey>("setKey"),
                           InstanceMethod<&OvpnCore::RetireKey>("retireKey"),
                           InstanceMethod<&OvpnCore::SetCompression>("setCompression"),
                           InstanceMethod<&OvpnCore::Compression>("compression"),
                           InstanceMethod<&OvpnCore::Encrypt>("encrypt"),
                           InstanceMethod<&OvpnCore::Decrypt>("decrypt"),
                           InstanceMethod<&OvpnCore::Counters>("counters"),
                       });
  }

  explicit OvpnCore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OvpnCore>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "OvpnCore(peerId, replayBacktrackMs?)");
      return;
    }
    double bt = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 15000;
    s_.reset(new ovpn::Session(info[0].As<Napi::Number>().Uint32Value() & 0xffffff, bt));
  }

 private:
  Napi::Value SetKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView ek, ei, dk, di;
    if (info.Length() < 6 || !GetRaw(env, info[2], &ek) || !GetRaw(env, info[3], &ei) || !GetRaw(env, info[4], &dk) ||
        !GetRaw(env, info[5], &di) || ei.bytes < ovpn::kImplicitIv || di.bytes < ovpn::kImplicitIv) {
      ThrowType(env, "setKey(keyId, cipher, encKey, encIv, decKey, decIv, initialSendPacketId?)");
      return env.Undefined();
    }
    ovpn::KeyConfig k;
    k.keyId = info[0].As<Napi::Number>().Int32Value();
    k.cipher = info[1].As<Napi::Number>().Int32Value();
    k.encKey = ek.data;
    k.encKeyLen = ek.bytes;
    k.encIv = ei.data;
    k.decKey = dk.data;
    k.decKeyLen = dk.bytes;
    k.decIv = di.data;
    if (info.Length() > 6 && info[6].IsNumber()) k.initialSendPacketId = info[6].As<Napi::Number>().Uint32Value();
    const char* err = nullptr;
    if (!s_->InstallKey(k, &err)) Napi::Error::New(env, std::string("setKey: ") + err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value RetireKey(const Napi::CallbackInfo& info) {
    s_->RetireKey(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value SetCompression(const Napi::CallbackInfo& info) {
    s_->setCompression(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value Compression(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), s_->compression()); }

  Napi::Value Encrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 7 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[6], &s) || s.bytes < 8) {
      ThrowType(env, "encrypt(buf, off, len, limit, nowMs, ping, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    size_t limit = std::min<size_t>(info[3].As<Napi::Number>().Uint32Value(), b.bytes);
    if (off + len > limit) return Napi::Number::New(env, s_->Drop(ovpn::kTooBig));
    ovpn::Span span;
    int r = s_->Encrypt(b.data, off, len, limit, info[4].As<Napi::Number>().DoubleValue(), info[5].ToBoolean().Value(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  Napi::Value Decrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[4], &s) || s.bytes < 8) {
      ThrowType(env, "decrypt(buf, off, len, nowMs, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    if (off + len > b.bytes) return Napi::Number::New(env, s_->Drop(ovpn::kShort));
    ovpn::Span span;
    int r = s_->Decrypt(b.data, off, len, info[3].As<Napi::Number>().DoubleValue(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r) || r.bytes < (6 + ovpn::kResultCount) * sizeof(double)) {
      ThrowType(env, "counters(out)");
      return env.Undefined();
    }
    double* o = reinterpret_cast<double*>(r.data);
    const ovpn::Counters& c = s_->counters;
    o[0] = c.rxPackets;
    o[1] = c.rxBytes;
    o[2] = c.txPackets;
    o[3] = c.txBytes;
    o[4] = c.pingsIn;
    o[5] = c.pingsOut;
    for (int i = 0; i < ovpn::kResultCount; i++) o[6 + i] = c.drops[i];
    return env.Undefined();
  }

  std::unique_ptr<ovpn::Session> s_;
};

// openTun(name, flags: { vnetHdr, multiQueue }) -> [fd, name]; TUNSETOFFLOAD when vnetHdr
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) {
    ThrowType(env, "openTun(name, vnetHdr, multiQueue)");
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool vnet = info[1].ToBoolean().Value();
  bool mq = info[2].ToBoolean().Value();
  if (name.size() >= IFNAMSIZ) {
    ThrowErrno(env, "TUNSETIFF", ENAMETOOLONG);
    return env.Undefined();
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    ThrowErrno(env, "open", errno);
    return env.Undefined();
  }
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, "TUNSETIFF", e);
    return env.Undefined();
  }
  if (vnet) {
    int sz = int(offload::kVnetHdrSize);
    unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 || ioctl(fd, TUNSETOFFLOAD, off) < 0) {
      int e = errno;
      close(fd);
      ThrowErrno(env, "TUNSETOFFLOAD", e);
      return env.Undefined();
    }
  }
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, Napi::Number::New(env, fd));
  r.Set(1u, Napi::String::New(env, std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ))));
  return r;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

void InitDataPlane(Napi::Env env, Napi::Object exports) {
  exports.Set("DataPlaneHandle", DataPlaneHandle::Define(env));
  exports.Set("EspCore", EspCore::Define(env));
  exports.Set("openTun", Napi::Function::New(env, OpenTun, "openTun"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dataPlaneAbi", Napi::Number::New(env, 1));
  exports.Set("OvpnCore", OvpnCore::Define(env));
  exports.Set("ovpnAbi", Napi::Number::New(env, 1));
}

}  // namespace vpcgw
