// The native data-plane engine: TUN <-> ESP-in-UDP (RFC 4303 tunnel mode, RFC 3948) and the
// OpenVPN data channel for SSL VPN clients, entirely in C++ on the event-loop thread. engine.cc has
// the packet path and its overview; bindings.cc parses JS arguments and drives this class;
// ssl-peers.h holds the SSL VPN sessions, route-table.h the inner-destination routes, ../core/policy.h
// the policy stage (ACLs by origin, VPC endpoint NAT) every packet between a tunnel and the TUN passes.
//
// The engine owns no JS objects except the buffers JS pinned for it (JsBuffers) and the callbacks
// it announces batches with; the JS wrapper (`self`, the DataPlaneHandle) is the callback receiver
// and is kept alive while polling.
#pragma once

#include <napi.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "../core/esp.h"
#include "../core/offload.h"
#include "../core/ovpn-tcp.h"
#include "../core/policy.h"
#include "../core/sockaddr.h"
#include "../io/pktinfo.h"
#include "../napi-util.h"
#include "route-table.h"
#include "ssl-peers.h"

namespace vpcgw {

// Hidden visibility: nothing outside the addon uses these types, and the packet path then calls its
// own functions directly (-fPIC would otherwise route calls between them through the PLT).
#pragma GCC visibility push(hidden)

// Implementation choices
constexpr uint32_t kReadBatch = 64;       // packets per TUN read round / UDP recvmmsg
constexpr int kMaxRoundsPerWake = 8;      // then yield to other handles (level-triggered poll)
constexpr uint32_t kMaxModerationUs = 10000;  // receive moderation: the longest hold SetOptions accepts
constexpr uint32_t kModerationBusyFactor = 4; // a socket is busy when its datagrams came < 4 x modUs apart
constexpr int kModIndex = -2;             // Bind::index of the moderation timer (the TUN's is -1)
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
constexpr size_t kTcpOutMaxBytes = 4 << 20;  // one TCP session's framed output per batch; more is dropped

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
  kTunRxBytes,    // IP bytes read from the TUN (a TSO super-packet counts as its segments)
  kTunTxBytes,    // IP bytes written to the TUN (a coalesced write counts as written)
  kTunReadsAfterWrite,  // SSL: TUN reads right after a TUN write that found packets (no poll wake-up)
  kRxModerations,       // receive moderation: times a busy socket's polling was held for rxModerationUs
  kStatDrops = 28,  // 15 drop counters follow
  kStatCount = kStatDrops + esp::kDropCount
};

// Layouts of the pinned JS buffers.
constexpr uint32_t kCtlStride = 6;    // off, len, bind, family, port, local family (+ 32 bytes in ctlAddr)
constexpr uint32_t kCtlAddrStride = 32;  // the sender's address, then the local address it reached
constexpr uint32_t kSinkStride = 3;   // off, len, sink index
constexpr uint32_t kEventStride = 3;  // spi, direction (0 in, 1 out), event bits
constexpr uint32_t kSslStride = 7;    // off, len, bind, family, port, peer-id, kind (+ 16 bytes in addr)
constexpr uint32_t kSslDatagram = 0;  // a raw datagram JS handles (control, unknown peer, float)
constexpr uint32_t kSslPlaintext = 1; // decrypted payload of a session JS decides on (OCC, client-to-client)
constexpr uint32_t kSslCounterHead = 12;
// SslTcpChunk's list for JS: a header, then one entry per packet JS handles, in stream order
constexpr uint32_t kTcpListHead = 2;    // [0]: where parsing stopped (offset into the chunk), [1]: 1 = stream broken
constexpr uint32_t kTcpItemStride = 3;  // off, len, kind
constexpr uint32_t kTcpItemPlain = 1;   // kind bit: decrypted payload of the session (OCC, client-to-client); else a raw packet
constexpr uint32_t kTcpItemSpill = 2;   // kind bit: the bytes are in the spill buffer (the packet crossed chunks), else in the chunk

// An installed SA (either direction) and, outbound, the peer's socket address.
struct OutSa {
  std::unique_ptr<esp::Sa> sa;
  Napi::ObjectReference seqRef;  // keeps sa->seqCell's SharedArrayBuffer view alive (multi-queue)
  sockaddr_storage to{};
  socklen_t toLen = 0;
  LocalAddr src;  // outbound on a wildcard socket: the SA's local address (else family 0)
  uint32_t origin = 0;  // inbound: the origin its packets carry into the policy stage (0: none)
};

struct TxEntry {
  uint8_t* data;
  uint32_t len;
  int32_t bind;
  const void* group;  // GSO runs never mix groups (an ESP SA or an SSL session)
  const sockaddr_storage* to;
  socklen_t toLen;
  const LocalAddr* src;  // the source to send from (family 0: the route's)
};

struct TunOut {
  uint8_t* data;
  uint32_t len;
};

class Engine;

// A polled fd: a UDP socket (index >= 0) or the TUN (index -1).
struct Bind {
  Engine* owner = nullptr;
  int index = 0;
  int fd = -1;
  int sockFamily = AF_INET;
  bool ssl = false;  // an SSL VPN socket (OpenVPN demux) rather than ESP-in-UDP / IKE
  std::shared_ptr<ReplySources> replies;  // a wildcard socket: replies carry their source (pktinfo.h)
  Poller poller;
  uint64_t lastDataUs = 0;  // receive moderation: when a wake-up last found datagrams (uv_hrtime, µs)
  bool paused = false;      // receive moderation: polling stopped until the moderation timer fires
};

// JS memory the engine writes into: counters, and what it hands to JS per batch.
struct JsBuffers {
  Pinned<double> stats;
  Pinned<uint8_t> ctlBuf;
  Pinned<uint32_t> ctlMeta;
  Pinned<uint8_t> ctlAddr;
  Pinned<uint8_t> sinkBuf;
  Pinned<uint32_t> sinkMeta;
  Pinned<uint32_t> events;
  Pinned<uint8_t> sslBuf;
  Pinned<uint32_t> sslMeta;
  Pinned<uint8_t> sslAddr;
};

enum class RouteKind { kSink, kSsl };

class Engine {
 public:
  explicit Engine(Napi::Reference<Napi::Object>* self) : self_(self) {}
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---------------------------------------------------------------- setup (bindings.cc)

  JsBuffers& js() { return js_; }
  // After js().stats..events are pinned: sizes the batches; false on a bad geometry.
  bool Configure(uint32_t maxPacket);
  uint32_t maxPacket() const { return maxPacket_; }
  bool closed() const { return closed_; }
  bool started() const { return started_; }
  bool hasTun() const { return tunFd_ >= 0; }
  int bindCount() const { return int(binds_.size()); }

  void AttachTun(int fd, bool vnetHdr, bool ownsFd);
  // A UDP socket to poll (ESP-in-UDP and IKE, or an SSL VPN socket): its bind index, or -1 with
  // *syscall / *err (errno, or a negative libuv code for uv_poll_start) set.
  int AttachUdp(napi_env env, int fd, bool ssl, const char** syscall, int* err);
  // Stops polling an SSL socket (the caller closes it); sessions on it then drop kNoBind.
  bool DetachSsl(int bind);
  // Offloads (gso: UDP_SEGMENT sends; gro: coalesced TUN writes) and receive moderation: after a
  // wake-up that drained a busy UDP socket, its polling waits modUs µs (0: never) — see Moderate.
  void SetOptions(bool gso, bool gro, uint32_t modUs);
  // Starts polling; cb(ctlCount, sinkCount, eventCount) announces each batch. 0 or a libuv error.
  int Start(napi_env env, Napi::Function cb);
  void Close();

  // SAs: `out` carries the SA and its remote; returns whether the SA has a usable socket.
  bool InstallSa(std::unique_ptr<OutSa> out);
  bool RemoveSa(uint32_t spi, bool inbound);
  const esp::Sa* FindSa(uint32_t spi, bool inbound) const;
  // Moves an SA's peer endpoint (NAT rebinding); keys, sequence numbers and counters stay. Only
  // between batches (JS calls). false: no such SA or the endpoint does not fit its socket.
  bool SetSaRemote(uint32_t spi, bool inbound, uint8_t family, const uint8_t* addr16, uint16_t port);

  // Routes by inner destination (family 4 or 6; prefix checked by the caller).
  void SetRoute(int family, const uint8_t* addr, unsigned len, RouteTarget t);
  // Removes a route; with `only`, only a route of that kind.
  bool RemoveRoute(int family, const uint8_t* addr, unsigned len, const RouteKind* only);
  const RouteTarget* LookupRoute(int family, const uint8_t* addr) const;

  // JS -> wire / TUN
  // `marker`: prepend the non-ESP marker (IKE); false sends `data` as it is (a NAT-keepalive).
  bool SendControl(int bind, uint8_t family, const uint8_t* addr, uint16_t port, const uint8_t* data, size_t len,
                   bool withMarker = true);
  // Queues a copy of one packet for the TUN (len already checked against maxPacket()), after the
  // policy stage's inbound check for `origin` (0: none); false when the stage dropped it.
  bool QueueTunWrite(const uint8_t* p, size_t len, uint32_t origin);
  void FlushJsTun();
  void CountDrop(int r) { DropCount(r); }

  // Policy stage (../core/policy.h): replaces its rules; with neither endpoints nor ACLs the packet
  // path pays one untaken branch per packet for it.
  void SetPolicy(const policy::Config& c);
  const policy::Stage& policy() const { return policy_; }
  // Forgets idle flows (at most maxWork); JS calls it about once a second.
  size_t ExpirePolicy(size_t maxWork) { return policy_.Expire(NowMs(), maxWork); }

  // SSL VPN
  SslPeerTable& sslPeers() { return ssl_; }
  void InstallSslPeer(uint32_t peerId, std::unique_ptr<SslPeer> p) { ssl_.Install(peerId, std::move(p), depth_ > 0); }
  bool RemoveSslPeer(uint32_t peerId) { return ssl_.Remove(peerId, depth_ > 0); }
  bool SetPeerRemote(SslPeer* p, int bind, uint8_t family, const uint8_t* addr, uint16_t port);
  // After js().sslBuf/sslMeta/sslAddr are pinned: cb(count) announces each SSL batch.
  void SetSslCallback(Napi::Function cb);
  // Encrypts one payload for a session and sends it at once (JS-originated packets and pings).
  bool SslSend(SslPeer* p, const uint8_t* data, size_t len, bool ping);
  // Multi-queue: a session's data packet from another endpoint (a float) reaches JS only once this
  // queue's session authenticated it and its replay window recorded it, since JS decides with
  // another queue's copy of the session (whose window never saw the session's steered packets).
  void SetSslFloatCheck(bool on);
  double NowMs() const { return loop_ ? double(uv_now(loop_)) : 0; }
  // OpenVPN over TCP: one chunk a session's socket delivered, chunk[*pos, n), parsed with the
  // stream's deframer. Data packets of session `peerId` (absent: none yet) are decrypted in place
  // and queued for the TUN (in place: the caller keeps `chunk` alive until FlushSslTcp; the
  // stream's `asmQueued` tracks a queued packet in the deframer's assembly buffer); every other
  // packet (control channel, other opcodes) and the plaintext JS decides on (OCC,
  // client-to-client) is listed in `list` in stream order (a packet that crossed chunks is copied
  // into `spill`, at most one per chunk). Stops early when the list is full (*pos: where to
  // resume). Returns the number of entries; list[1] = 1 when the stream carried a zero or over-long
  // length (after the listed packets; the connection must close).
  int SslTcpChunk(ovpn::TcpDeframer* d, uint32_t peerId, uint8_t* chunk, size_t n, size_t* pos, uint32_t* list,
                  uint32_t listCap, uint8_t* spill, size_t spillCap, bool* asmQueued);
  // Writes what SslTcpChunk queued to the TUN (one GRO-coalesced batch); JS calls it once per turn.
  void FlushSslTcp();
  // OpenVPN over TCP, the send side: cb(list) receives, once per batch, [peerId, Buffer, frames, ...]
  // with each TCP session's framed, encrypted packets (a copy JS may keep). Set before SetSslTcp.
  void SetSslTcpOutput(Napi::Function cb) { tcpOutCb_ = Napi::Persistent(cb); }
  // Marks a session as a TCP one: its routed packets and SslSend payloads are encrypted and framed
  // into its output (OutboundSslTcp) instead of being sent on a UDP socket.
  bool SetSslTcp(uint32_t peerId, bool on);
  // Hands the pending TCP output to JS (inLoop: called from a poll callback, else from a JS call).
  void DeliverTcpOut(bool inLoop);
  bool tcpOutPending() const { return !tcpPending_.empty(); }

  // Test seam (test/fuzz/fuzz_inbound.cc): runs the inbound demux of one datagram from `from` to
  // `local` as if bind `bind` had received it (Inbound or InboundSsl), then ends the batch. For
  // an engine without sockets, TUN or callbacks; the packet path itself is unchanged.
  void DemuxForTest(int bind, const uint8_t* data, size_t len, const sockaddr_storage& from, const LocalAddr& local);
  // Test seam: a bind with no descriptor (index returned), for the demux above.
  int AddTestBind(bool ssl, int sockFamily);

 private:
  double* st() { return js_.stats.ptr; }
  void DropCount(int r) { js_.stats.ptr[kStatDrops + r] += 1; }
  uint8_t* TxSlot(uint32_t i) { return tx_.data() + size_t(i) * slot_; }
  void Retire(std::unique_ptr<OutSa> sa) {
    if (depth_ > 0) graveyard_.push_back(std::move(sa));  // a batch may still hold a pointer to it
  }

  // packet path (engine.cc)
  static void OnPollThunk(void* owner, int status, int events);
  static void OnPollClosed(void* owner);
  static void OnSslDetached(void*) {}
  void WriteTunPacket(const uint8_t* p, size_t len);
  void OnTunReadable(int status);
  void ReadVnet(size_t n);
  void Outbound(uint32_t slot, size_t len);
  void FlushTx();
  void SendBind(int b);
  void LocalOf(const Bind* b, uint32_t j, LocalAddr* out);
  void SendMsgs(int b, uint32_t k);
  void ToSink(int32_t sink, const uint8_t* p, size_t len);
  void QueueEvent(esp::Sa* sa, int bits);
  void PeerMoved(OutSa* in, const sockaddr_storage& from);
  void DeliverJs();
  void DrainErrors(int fd) { st()[kIcmpErrors] += DrainErrorQueue(fd); }
  void OnUdpReadable(Bind* b, int status);
  void ReadTunAfterWrite();
  void Moderate(Bind* b);
  void OnModTimer();
  void Inbound(Bind* b, uint32_t j, size_t len);
  void ToControl(Bind* b, uint32_t j, const uint8_t* p, size_t len);
  void FlushTunOut();
  enum InnerTarget { kInnerDrop, kInnerClient, kInnerTun };
  int SslInnerTarget(SslPeer* peer, const uint8_t* ip, size_t len);
  void WriteTunQueue(const TunOut* q, uint32_t n);
  void WriteCoalesced();
  void OutboundSsl(uint32_t slot, size_t len, uint32_t peerId);
  void AppendTcpFrame(SslPeer* p, const uint8_t* pkt, size_t len);
  void InboundSsl(Bind* b, uint32_t j, size_t len);
  void InboundSslFloat(Bind* b, uint32_t j, size_t len, SslPeer* peer);
  void ToSslJs(Bind* b, uint32_t j, const uint8_t* p, size_t len, uint32_t peerId, uint32_t kind);
  void DeliverSsl();

  Napi::Reference<Napi::Object>* self_;
  JsBuffers js_;
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
  // Receive moderation (SetOptions' modUs): a timerfd polled as index -2, and the sockets it holds.
  Bind modCtx_;
  uint32_t modUs_ = 0;
  bool modArmed_ = false;
  std::vector<Bind*> paused_, resuming_;
  std::vector<std::unique_ptr<Bind>> binds_;
  bool started_ = false, closed_ = false;
  int polls_ = 0, closing_ = 0, depth_ = 0;

  std::unordered_map<uint32_t, std::unique_ptr<OutSa>> inSas_, outSas_;
  std::vector<std::unique_ptr<OutSa>> graveyard_;
  SslPeerTable ssl_;
  uint32_t sslCap_ = 0, sslCount_ = 0;
  size_t sslBytes_ = 0;
  Napi::FunctionReference sslCb_;
  uv_loop_t* loop_ = nullptr;
  std::vector<uint8_t> sslTx_;
  bool sslFloatCheck_ = false;
  std::vector<uint8_t> sslFloat_;  // the float's datagram as received (decryption is in place)
  RouteTable routes4_, routes6_;
  policy::Stage policy_;
  bool policyIn_ = false, policyOut_ = false;  // the stage has inbound / outbound work

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
  std::vector<uint8_t> rxCtrl_;  // per rx slot: the destination-address control message (wildcard binds)
  std::vector<TunOut> tunOut_;
  uint32_t tunOutCount_ = 0;
  std::vector<TunOut> tcpOut_;  // SslTcpChunk's queue to the TUN (until FlushSslTcp)
  std::vector<SslPeer*> tcpPending_;  // TCP sessions with framed output for JS (DeliverTcpOut)
  Napi::FunctionReference tcpOutCb_;
  uint32_t tcpOutCount_ = 0;
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

#pragma GCC visibility pop

}  // namespace vpcgw
