// The native data-plane engine: TUN <-> ESP-in-UDP (RFC 4303 tunnel mode, RFC 3948) entirely in C++, on the
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
// SSL VPN (OpenVPN data channel, ../core/ovpn.cc) as a second framing on the same machinery:
//   - a route may name an SSL session (by peer-id): step 3 encrypts P_DATA_V2 in place instead,
//     and step 4 sends it from the session's SSL socket (GSO runs per session); a TCP session's
//     packets are framed into its output buffer instead, which step 4 hands to JS (DeliverTcpOut);
//   - SSL sockets (attachSsl) demux by first byte: data opcodes with a known peer-id from the
//     session's own addr:port are decrypted in place and go to the TUN (pings are counted);
//     everything else (control, unknown peer, a float) and OCC / client-to-client plaintext is
//     copied for JS and announced by one SSL callback per batch;
//   - after a batch from an SSL socket wrote to the TUN, the TUN is read at once: the replies the
//     kernel produced during that write (a local TCP receiver's ACKs) go out in the same wake-up.
// Wildcard sockets (0.0.0.0 / ::; ../io/pktinfo.h): recvmmsg also reads each datagram's destination
// address. Datagrams for JS record it per sender (the reply table JS-originated sends use), an SSL
// session keeps the address its authenticated packets reach, an outbound SA sends from its local
// address; sendmmsg then carries one IP_PKTINFO control message per datagram (next to UDP_SEGMENT).
// Receive moderation (as a NIC's rx-usecs or Linux's gro_flush_timeout): a stock OpenVPN client or
// a libipsec peer sends each datagram with its own sendto(), so a socket that is read as soon as it
// turns readable yields one or two datagrams per wake-up, and every wake-up pays for the poll, the
// read, one short TUN write (a small GRO super-packet the receiver then ACKs on its own) and one
// sendmmsg of those ACKs. When a wake-up drained a socket that also had datagrams in the previous
// 4 x modUs, its polling pauses for modUs (a timerfd); the datagrams that queue meanwhile are then
// read, coalesced and answered as one batch. An idle or slow socket is read at once, so only a
// busy one adds latency, at most modUs.
// Errors never stop a poll: POLLERR is counted, the socket error queue drained, the poll re-armed.
// Policy stage (../core/policy.h, semantics in src/vpcep/policy.ts): every packet a tunnel hands to
// the TUN (inbound step 2 and the SSL demux, and JS writeTun with an origin) passes its Inbound
// check before the TUN write (so before GRO coalescing), with the origin of its SA or session;
// every packet read from the TUN (each TSO segment too) passes Outbound before the route lookup.
// Both may rewrite the packet in place (VPC endpoint NAT) or drop it (counted in the stage).
// Nothing is allocated per packet; SAs removed while a batch runs are freed after it.
#include "engine.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "../core/bytes.h"
#include "../core/ovpn.h"
#include "../core/sockaddr.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace vpcgw {

using esp::Sa;
using esp::Span;

namespace {

// Control room per sent message: a UDP_SEGMENT (GSO run) and a source address (wildcard socket).
constexpr size_t kTxCtrlSpace = CMSG_SPACE(sizeof(uint16_t)) + kSrcCmsgSpace;

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

}  // namespace

// ------------------------------------------------------------------ setup (driven by bindings.cc)

Engine::~Engine() {
  if (ownsTunFd_ && tunFd_ >= 0) close(tunFd_);
}

bool Engine::Configure(uint32_t maxPacket) {
  ctlCap_ = uint32_t(std::min<size_t>(js_.ctlMeta.count / kCtlStride, js_.ctlAddr.count / kCtlAddrStride));
  sinkCap_ = uint32_t(js_.sinkMeta.count / kSinkStride);
  evCap_ = uint32_t(js_.events.count / kEventStride);
  maxPacket_ = maxPacket;
  if (maxPacket_ < 576 || maxPacket_ > 9000 || ctlCap_ == 0 || sinkCap_ == 0 || evCap_ == 0) return false;
  slot_ = (kHeadroom + maxPacket_ + kTailroom + 63) & ~size_t(63);
  tx_.resize(kTxSlots * slot_);
  txEntries_.resize(kTxSlots);
  txIdx_.resize(kTxSlots);
  rx_.resize(kReadBatch * slot_);
  rxMsgs_.assign(kReadBatch, mmsghdr{});
  rxIov_.resize(kReadBatch);
  rxAddr_.resize(kReadBatch);
  rxCtrl_.assign(kReadBatch * kRecvCtrlSpace, 0);
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
  txCtrl_.resize(kTxSlots * kTxCtrlSpace);
  tunOut_.resize(kReadBatch);
  jsTun_.resize(kJsTunSlots * maxPacket_);
  jsTunLen_.resize(kJsTunSlots);
  scratch_.resize(kSuperPacket + kHeadroom);
  groBuf_.resize(kSuperPacket);
  coalescer_.reset(new offload::Coalescer(groBuf_.data(), groBuf_.size()));
  segLens_.resize(kMaxSegsPerRead);
  sslTx_.resize(slot_);
  return true;
}

void Engine::AttachTun(int fd, bool vnetHdr, bool ownsFd) {
  tunFd_ = fd;
  vnet_ = vnetHdr;
  ownsTunFd_ = ownsFd;
}

int Engine::AttachUdp(napi_env env, int fd, bool ssl, const char** syscall, int* err) {
  auto b = std::make_unique<Bind>();
  b->owner = this;
  b->index = int(binds_.size());
  b->fd = fd;
  b->ssl = ssl;
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(b->fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) {
    *syscall = "getsockname";
    *err = errno;
    return -1;
  }
  b->sockFamily = ss.ss_family;
  b->replies = FindReplySources(fd);  // set by the socket's UdpHandle when it is a wildcard bind
  if (started_) {  // an SSL socket attached later: polling starts at once
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = b->poller.Start(loop, b->fd, b.get(), &Engine::OnPollThunk);
    if (rc != 0) {
      *syscall = "uv_poll_start";
      *err = -rc;
      return -1;
    }
  }
  binds_.push_back(std::move(b));
  return int(binds_.size()) - 1;
}

bool Engine::DetachSsl(int bi) {
  if (bi < 0 || bi >= int(binds_.size()) || !binds_[bi]->ssl) return false;
  Bind* b = binds_[bi].get();
  if (!closed_) b->poller.Close(&Engine::OnSslDetached);
  b->fd = -1;
  return true;
}

void Engine::SetOptions(bool gso, bool gro, uint32_t modUs) {
  gso_ = gso;
  gro_ = gro && vnet_;
  if (!started_) modUs_ = std::min<uint32_t>(modUs, kMaxModerationUs);
}

int Engine::Start(napi_env env, Napi::Function cb) {
  cb_ = Napi::Persistent(cb);
  napi_async_init(env, self_->Value(), Napi::String::New(env, "vpcgw:dataplane"), &async_);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  loop_ = loop;
  if (tunFd_ >= 0) {
    tunCtx_.owner = this;
    tunCtx_.index = -1;
    tunCtx_.fd = tunFd_;
    int rc = tunCtx_.poller.Start(loop, tunFd_, &tunCtx_, &Engine::OnPollThunk);
    if (rc != 0) return rc;
    polls_++;
  }
  if (modUs_ > 0) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return uv_translate_sys_error(errno);
    modCtx_.owner = this;
    modCtx_.index = kModIndex;
    modCtx_.fd = fd;
    int rc = modCtx_.poller.Start(loop, fd, &modCtx_, &Engine::OnPollThunk);
    if (rc != 0) return rc;
    polls_++;
  }
  for (auto& b : binds_) {
    if (b->fd < 0) continue;  // an SSL socket detached before start
    int rc = b->poller.Start(loop, b->fd, b.get(), &Engine::OnPollThunk);
    if (rc != 0) return rc;
    polls_++;
  }
  started_ = true;
  self_->Ref();  // alive while polling
  return 0;
}

bool Engine::InstallSa(std::unique_ptr<OutSa> out) {
  Sa* sa = out->sa.get();
  if (sa->bindIndex >= int(binds_.size())) sa->bindIndex = -1;
  if (sa->bindIndex >= 0) {
    out->toLen = MakeSockaddr(&out->to, binds_[sa->bindIndex]->sockFamily, sa->remoteFamily, sa->remoteAddr,
                              sa->remotePort);
    if (out->toLen == 0) sa->bindIndex = -1;
  }
  // On a wildcard socket the SA's local address (installSa's localAddr), else the address its peer
  // last reached us on; on a socket bound to one address the kernel already picks it.
  const Bind* b = sa->bindIndex >= 0 ? binds_[sa->bindIndex].get() : nullptr;
  if (!b || !b->replies || sa->inbound())
    out->src.family = 0;
  else if (out->src.family == 0)
    b->replies->Lookup(out->to, &out->src);
  auto& m = sa->inbound() ? inSas_ : outSas_;
  uint32_t spi = sa->spi();
  auto it = m.find(spi);
  if (it != m.end()) {
    Retire(std::move(it->second));
    it->second = std::move(out);
  } else {
    m.emplace(spi, std::move(out));
  }
  return sa->bindIndex >= 0;
}

bool Engine::RemoveSa(uint32_t spi, bool inbound) {
  auto& m = inbound ? inSas_ : outSas_;
  auto it = m.find(spi);
  if (it == m.end()) return false;
  Retire(std::move(it->second));
  m.erase(it);
  return true;
}

bool Engine::SetSaRemote(uint32_t spi, bool inbound, uint8_t family, const uint8_t* addr16, uint16_t port) {
  auto& m = inbound ? inSas_ : outSas_;
  auto it = m.find(spi);
  if (it == m.end()) return false;
  OutSa* o = it->second.get();
  Sa* sa = o->sa.get();
  if (sa->bindIndex < 0) return false;
  sockaddr_storage to;
  socklen_t len = MakeSockaddr(&to, binds_[sa->bindIndex]->sockFamily, family, addr16, port);
  if (len == 0) return false;
  o->to = to;
  o->toLen = len;
  sa->remoteFamily = family;
  memcpy(sa->remoteAddr, addr16, 16);
  sa->remotePort = port;
  return true;
}

const Sa* Engine::FindSa(uint32_t spi, bool inbound) const {
  auto& m = inbound ? inSas_ : outSas_;
  auto it = m.find(spi);
  return it == m.end() ? nullptr : it->second->sa.get();
}

void Engine::SetRoute(int family, const uint8_t* addr, unsigned len, RouteTarget t) {
  (family == 4 ? routes4_ : routes6_).Set(addr, family == 4 ? 4 : 16, len, t);
}

bool Engine::RemoveRoute(int family, const uint8_t* addr, unsigned len, const RouteKind* only) {
  RouteTable& rt = family == 4 ? routes4_ : routes6_;
  size_t alen = family == 4 ? 4 : 16;
  if (only) {
    const RouteTarget* t = rt.Get(addr, alen, len);
    if (!t || (*only == RouteKind::kSink ? t->sink : t->ssl) < 0) return false;
  }
  return rt.Remove(addr, alen, len);
}

const RouteTarget* Engine::LookupRoute(int family, const uint8_t* addr) const {
  return family == 4 ? routes4_.Lookup(addr, 4) : routes6_.Lookup(addr, 16);
}

// ------------------------------------------------------------------ JS -> wire / TUN

bool Engine::SendControl(int bi, uint8_t family, const uint8_t* addr, uint16_t port, const uint8_t* data, size_t len,
                         bool withMarker) {
  if (closed_ || bi < 0 || bi >= int(binds_.size())) return false;
  sockaddr_storage ss;
  socklen_t sl = MakeSockaddr(&ss, binds_[bi]->sockFamily, family, addr, port);
  if (sl == 0) return false;
  // RFC 3948 §2.2: IKE on the ESP-in-UDP port carries the 4-byte zero non-ESP marker
  static const uint8_t marker[kNonEspMarker] = {0, 0, 0, 0};
  iovec iov[2] = {{const_cast<uint8_t*>(marker), kNonEspMarker}, {const_cast<uint8_t*>(data), len}};
  msghdr h{};
  h.msg_name = &ss;
  h.msg_namelen = sl;
  h.msg_iov = withMarker ? iov : iov + 1;
  h.msg_iovlen = withMarker ? 2 : 1;
  alignas(cmsghdr) uint8_t ctrl[kSrcCmsgSpace];
  LocalAddr src;
  if (binds_[bi]->replies && binds_[bi]->replies->Lookup(ss, &src)) {
    h.msg_control = ctrl;
    h.msg_controllen = PutSrcCmsg(ctrl, binds_[bi]->sockFamily, src);
    if (h.msg_controllen == 0) h.msg_control = nullptr;
  }
  ssize_t r;
  do {
    r = sendmsg(binds_[bi]->fd, &h, MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) st()[kSendErrors] += 1;
  return r >= 0;
}

bool Engine::QueueTunWrite(const uint8_t* p, size_t len, uint32_t origin) {
  if (jsTunCount_ == kJsTunSlots) FlushJsTun();
  uint8_t* slot = jsTun_.data() + size_t(jsTunCount_) * maxPacket_;
  memcpy(slot, p, len);
  if (policyIn_ && policy_.Inbound(slot, len, origin, NowMs()) != policy::kPass) return false;
  jsTunLen_[jsTunCount_++] = uint32_t(len);
  return true;
}

void Engine::SetPolicy(const policy::Config& c) {
  policy_.SetPolicy(c, NowMs());
  policyIn_ = policy_.inboundActive();
  policyOut_ = policy_.outboundActive();
}

// ------------------------------------------------------------------ SSL VPN setup

bool Engine::SetPeerRemote(SslPeer* p, int bind, uint8_t family, const uint8_t* addr, uint16_t port) {
  p->bind = -1;
  p->toLen = 0;
  if (bind < 0 || bind >= int(binds_.size()) || !binds_[bind]->ssl) return false;
  p->toLen = MakeSockaddr(&p->to, binds_[bind]->sockFamily, family, addr, port);
  if (p->toLen == 0) return false;
  p->bind = bind;
  // the address the client's handshake reached (recorded when its control packets went to JS)
  p->src.family = 0;
  if (binds_[bind]->replies) binds_[bind]->replies->Lookup(p->to, &p->src);
  return true;
}

void Engine::SetSslCallback(Napi::Function cb) {
  sslCap_ = uint32_t(std::min<size_t>(js_.sslMeta.count / kSslStride, js_.sslAddr.count / 16));
  sslCount_ = 0;
  sslBytes_ = 0;
  sslCb_ = Napi::Persistent(cb);
}

bool Engine::SslSend(SslPeer* p, const uint8_t* data, size_t len, bool ping) {
  if (p->tcp) {
    // the caller (bindings.cc) hands the framed packet to JS right after (DeliverTcpOut)
    uint8_t* slot = sslTx_.data();
    memcpy(slot + kHeadroom, data, len);
    ovpn::Span span;
    if (p->s->Encrypt(slot, kHeadroom, len, kHeadroom + maxPacket_ + kTailroom, NowMs(), ping, &span) != ovpn::kIp) {
      st()[kSslDrops] += 1;
      return false;
    }
    AppendTcpFrame(p, slot + span.off, span.len);
    return true;
  }
  if (p->bind < 0 || binds_[p->bind]->fd < 0) {
    p->s->Drop(ovpn::kNoBind);
    return false;
  }
  uint8_t* slot = sslTx_.data();
  memcpy(slot + kHeadroom, data, len);
  ovpn::Span span;
  if (p->s->Encrypt(slot, kHeadroom, len, kHeadroom + maxPacket_ + kTailroom, NowMs(), ping, &span) != ovpn::kIp) {
    st()[kSslDrops] += 1;
    return false;
  }
  iovec iov{slot + span.off, span.len};
  msghdr h{};
  h.msg_name = &p->to;
  h.msg_namelen = p->toLen;
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) uint8_t ctrl[kSrcCmsgSpace];
  if (p->src.family != 0) {
    h.msg_controllen = PutSrcCmsg(ctrl, binds_[p->bind]->sockFamily, p->src);
    if (h.msg_controllen > 0) h.msg_control = ctrl;
  }
  ssize_t r;
  do {
    r = sendmsg(binds_[p->bind]->fd, &h, MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    st()[kSendErrors] += 1;
    return false;
  }
  st()[kSslTxPackets] += 1;
  st()[kUdpTxDatagrams] += 1;
  return true;
}

// ------------------------------------------------------------------ close

void Engine::Close() {
  if (closed_) return;
  closed_ = true;
  int pending = 0;
  if (tunCtx_.poller.Close(&Engine::OnPollClosed)) pending++;
  if (modCtx_.poller.Close(&Engine::OnPollClosed)) pending++;
  if (modCtx_.fd >= 0) close(modCtx_.fd);  // uv_close already removed it from epoll
  modCtx_.fd = -1;
  paused_.clear();
  for (auto& b : binds_)
    if (b->poller.Close(&Engine::OnPollClosed)) pending++;
  closing_ = pending;
  for (auto& kv : inSas_) Retire(std::move(kv.second));
  for (auto& kv : outSas_) Retire(std::move(kv.second));
  inSas_.clear();
  outSas_.clear();
  routes4_.Clear();
  routes6_.Clear();
  for (SslPeer* p : tcpPending_) p->tcpQueued = false;
  tcpPending_.clear();
  ssl_.Clear(depth_ > 0);
  sslCount_ = 0;
  jsTunCount_ = 0;
  if (ownsTunFd_ && tunFd_ >= 0) {
    close(tunFd_);  // uv_close already removed it from epoll
  }
  tunFd_ = -1;
  if (pending == 0 && started_) self_->Unref();
}

// ------------------------------------------------------------------ packet path
//
// The per-packet and per-batch steps marked VPCGW_PACKET_STEP are private to this file and folded
// into their callers (the poll entry point OnPollThunk), so splitting the engine from its bindings
// added no call per packet; Outbound, SendBind, DeliverJs and ToSslJs stay out of line, as the
// compiler chose when the whole data plane was one file. Engine has hidden visibility (engine.h),
// so calls between these functions are direct.
#define VPCGW_PACKET_STEP __attribute__((always_inline)) inline

// Packets JS queued (the SSL VPN's TCP sessions and JS data channels): with GRO, runs of one TCP
// flow go to the TUN as one coalesced super-packet, as decrypted ESP and native SSL packets do in
// FlushTunOut. The coalescer is idle here: FlushTunOut finishes its super-packet before returning
// and calls no JS in between.
void Engine::FlushJsTun() {
  if (!gro_ || tunFd_ < 0) {
    for (uint32_t i = 0; i < jsTunCount_; i++) WriteTunPacket(jsTun_.data() + size_t(i) * maxPacket_, jsTunLen_[i]);
    jsTunCount_ = 0;
    return;
  }
  offload::Coalescer& c = *coalescer_;
  for (uint32_t i = 0; i < jsTunCount_; i++) {
    const uint8_t* p = jsTun_.data() + size_t(i) * maxPacket_;
    uint32_t len = jsTunLen_[i];
    if (c.Pending() && c.Append(p, len)) continue;
    if (c.Pending()) WriteCoalesced();
    if (!c.Start(p, len)) WriteTunPacket(p, len);
  }
  if (c.Pending()) WriteCoalesced();
  jsTunCount_ = 0;
}

// One packet to the TUN (a zero vnet header first when the TUN carries them).
VPCGW_PACKET_STEP void Engine::WriteTunPacket(const uint8_t* p, size_t len) {
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
  if (r < 0) {
    st()[kTunWriteErrors] += 1;
  } else {
    st()[kTunTxPackets] += 1;
    st()[kTunTxBytes] += double(len);
  }
}

void Engine::OnPollThunk(void* owner, int status, int events) {
  Bind* b = static_cast<Bind*>(owner);
  Engine* self = b->owner;
  if (self->closed_) return;
  Napi::HandleScope scope(self->self_->Env());
  self->depth_++;
  if (b->index == kModIndex)
    self->OnModTimer();
  else if (b->index < 0)
    self->OnTunReadable(status);
  else
    self->OnUdpReadable(b, status);
  self->depth_--;
  if (self->depth_ == 0) {
    self->graveyard_.clear();
    self->ssl_.Release();
  }
}

VPCGW_PACKET_STEP void Engine::OnTunReadable(int status) {
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
      st()[kTunRxBytes] += double(r);
      uint32_t i = txUsed_++;
      Outbound(i, size_t(r));
    }
    if (txUsed_ >= kReadBatch) FlushTx();
  }
  FlushTx();
  DeliverJs();
}

// A read from a vnet-header TUN at scratch_: header, then one packet or a TSO super-packet.
VPCGW_PACKET_STEP void Engine::ReadVnet(size_t n) {
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
    size_t bytes = 0;
    for (int s = 0; s < segs; s++) {
      bytes += segLens_[s];
      Outbound(first + uint32_t(s), segLens_[s]);
    }
    st()[kTunRxBytes] += double(bytes);
    return;
  }
  if (gso != offload::kGsoNone) {
    DropCount(esp::kBadInner);  // UDP fragmentation offload etc.: not negotiated
    return;
  }
  if (h.flags & offload::kFlagNeedsCsum) offload::CompleteChecksum(pkt, len, h.csumStart, h.csumOffset);
  st()[kTunRxPackets] += 1;
  st()[kTunRxBytes] += double(len);
  if (len > maxPacket_) {
    DropCount(esp::kNoRoom);
    return;
  }
  uint32_t i = txUsed_++;
  memcpy(TxSlot(i) + kHeadroom, pkt, len);
  Outbound(i, len);
}

void Engine::Outbound(uint32_t slot, size_t len) {
  uint8_t* base = TxSlot(slot);
  uint8_t* ip = base + kHeadroom;
  if (esp::InnerIpLength(ip, len) < 0) {
    DropCount(esp::kBadInner);
    return;
  }
  if (__builtin_expect(policyOut_, 0) && policy_.Outbound(ip, len, NowMs()) != policy::kPass) return;
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
  e.src = &out->src;
}

// Sends the queued ESP datagrams: per bind, one sendmmsg; GSO groups equal-size runs per SA.
VPCGW_PACKET_STEP void Engine::FlushTx() {
  if (txCount_ > 0 && !closed_) {
    for (size_t b = 0; b < binds_.size(); b++) SendBind(int(b));
  }
  txCount_ = 0;
  txUsed_ = 0;
  if (__builtin_expect(!tcpPending_.empty(), 0)) DeliverTcpOut(true);
}

void Engine::SendBind(int b) {
  uint32_t m = 0;
  for (uint32_t i = 0; i < txCount_; i++)
    if (txEntries_[i].bind == b) txIdx_[m++] = i;
  uint32_t x = 0, k = 0, iovUsed = 0;
  int sockFamily = binds_[b]->sockFamily;
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
    // control messages: UDP_SEGMENT for a GSO run, the source address on a wildcard socket (a run
    // is one SA or session, so one source); the message's own preallocated slice of txCtrl_
    uint8_t* ctrl = txCtrl_.data() + size_t(k) * kTxCtrlSpace;
    size_t ctrlLen = 0;
    if (n > 1) {
      cmsghdr* cm = reinterpret_cast<cmsghdr*>(ctrl);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gs = uint16_t(e.len);
      memcpy(CMSG_DATA(cm), &gs, sizeof gs);
      ctrlLen = CMSG_SPACE(sizeof(uint16_t));
      st()[kGsoSends] += 1;
    }
    if (e.src->family != 0) ctrlLen += PutSrcCmsg(ctrl + ctrlLen, sockFamily, *e.src);
    if (ctrlLen > 0) {
      h.msg_control = ctrl;
      h.msg_controllen = ctrlLen;
    }
    k++;
    x += n;
  }
  if (k > 0) SendMsgs(b, k);
}

VPCGW_PACKET_STEP void Engine::SendMsgs(int b, uint32_t k) {
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
    if (r < 0 && (e == EIO || e == EINVAL) && txMsgs_[p].msg_hdr.msg_iovlen > 1) gsoBroken_ = true;
    p++;  // refused (EMSGSIZE, EPERM...): skip it
  }
}

VPCGW_PACKET_STEP void Engine::ToSink(int32_t sink, const uint8_t* p, size_t len) {
  if (len > maxPacket_) {
    DropCount(esp::kNoRoom);
    return;
  }
  if (sinkCount_ == sinkCap_ || size_t(sinkCount_ + 1) * maxPacket_ > js_.sinkBuf.count) DeliverJs();
  if (closed_ || size_t(sinkCount_ + 1) * maxPacket_ > js_.sinkBuf.count) {
    DropCount(esp::kNoRoom);
    return;
  }
  uint32_t off = sinkCount_ * maxPacket_;
  memcpy(js_.sinkBuf.ptr + off, p, len);
  uint32_t* m = js_.sinkMeta.ptr + sinkCount_ * kSinkStride;
  m[0] = off;
  m[1] = uint32_t(len);
  m[2] = uint32_t(sink);
  sinkCount_++;
  st()[kSinkPackets] += 1;
}

VPCGW_PACKET_STEP void Engine::QueueEvent(Sa* sa, int bits) {
  if (evCount_ == evCap_) DeliverJs();
  if (evCount_ == evCap_) return;
  uint32_t* m = js_.events.ptr + evCount_ * kEventStride;
  m[0] = sa->spi();
  m[1] = sa->inbound() ? 0 : 1;
  m[2] = uint32_t(bits);
  evCount_++;
}

// Rare path: the inbound SA takes `from` as its peer, and JS hears of it once (kEventPeerMoved;
// it reads the new endpoint with saRemote and moves the sibling SAs).
void Engine::PeerMoved(OutSa* in, const sockaddr_storage& from) {
  Sa* sa = in->sa.get();
  uint8_t family = 0;
  uint16_t port = 0;
  uint8_t addr[16];
  StoreEndpoint(&from, &family, addr, &port);
  if (family == 0) return;
  in->to = from;
  sa->remoteFamily = family;
  memcpy(sa->remoteAddr, addr, 16);
  sa->remotePort = port;
  QueueEvent(sa, esp::kEventPeerMoved);
}

// One JS callback for everything collected in this batch.
void Engine::DeliverJs() {
  DeliverSsl();
  if (ctlCount_ == 0 && sinkCount_ == 0 && evCount_ == 0) return;
  if (closed_ || cb_.IsEmpty()) {
    ctlCount_ = sinkCount_ = evCount_ = 0;
    return;
  }
  napi_env env = self_->Env();
  napi_value argv[3];
  napi_create_uint32(env, ctlCount_, &argv[0]);
  napi_create_uint32(env, sinkCount_, &argv[1]);
  napi_create_uint32(env, evCount_, &argv[2]);
  ctlCount_ = sinkCount_ = evCount_ = 0;
  ctlBytes_ = 0;
  st()[kJsCallbacks] += 1;
  CallFromLoop(env, async_, self_->Value(), cb_.Value(), 3, argv);
}

VPCGW_PACKET_STEP void Engine::OnUdpReadable(Bind* b, int status) {
  if (status < 0) {
    st()[kPollErrors] += 1;
    DrainErrors(b->fd);
    b->poller.Rearm();
  }
  int errors = 0;
  bool wroteTun = false, got = false, drained = false;
  for (int round = 0; round < kMaxRoundsPerWake && !closed_; round++) {
    // the destination-address control messages only on wildcard binds (the slots are shared)
    uint8_t* ctrl = b->replies ? rxCtrl_.data() : nullptr;
    size_t ctrlLen = b->replies ? kRecvCtrlSpace : 0;
    for (uint32_t i = 0; i < kReadBatch; i++) {
      msghdr& h = rxMsgs_[i].msg_hdr;
      h.msg_namelen = sizeof(sockaddr_storage);
      h.msg_control = ctrl ? ctrl + size_t(i) * kRecvCtrlSpace : nullptr;
      h.msg_controllen = ctrlLen;
    }
    int r = recvmmsg(b->fd, rxMsgs_.data(), kReadBatch, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        drained = true;
        break;
      }
      if (IsIcmpErrno(e) && ++errors <= 16) {
        st()[kIcmpErrors] += 1;
        DrainErrors(b->fd);
        continue;
      }
      break;
    }
    st()[kUdpRxDatagrams] += r;
    got |= r > 0;
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
    wroteTun |= tunOutCount_ > 0;
    FlushTunOut();
    DeliverJs();
    if (r < int(kReadBatch)) {
      drained = true;
      break;
    }
  }
  if (b->ssl && wroteTun) ReadTunAfterWrite();
  if (modUs_ > 0 && got && drained) Moderate(b);
}

// Receive moderation (see the header comment): called after a wake-up that found datagrams and
// emptied the socket.
void Engine::Moderate(Bind* b) {
  uint64_t now = uv_hrtime() / 1000;
  uint64_t gap = now - b->lastDataUs;
  b->lastDataUs = now;
  if (gap > uint64_t(kModerationBusyFactor) * modUs_ || b->paused || b->fd < 0 || closed_) return;
  if (b->poller.Pause() != 0) return;
  b->paused = true;
  paused_.push_back(b);
  st()[kRxModerations] += 1;
  if (modArmed_) return;
  itimerspec t{};
  t.it_value.tv_nsec = long(modUs_) * 1000;
  if (timerfd_settime(modCtx_.fd, 0, &t, nullptr) == 0) {
    modArmed_ = true;
    return;
  }
  for (Bind* p : paused_) {  // no timer: never leave a socket unpolled
    p->paused = false;
    p->poller.Rearm();
  }
  paused_.clear();
}

// The moderation timer fired: poll the held sockets again and read what queued meanwhile (which
// may hold them for another period while they stay busy).
void Engine::OnModTimer() {
  uint64_t expirations;
  while (read(modCtx_.fd, &expirations, sizeof expirations) < 0 && errno == EINTR) {
  }
  modArmed_ = false;
  resuming_.swap(paused_);
  for (Bind* b : resuming_) {
    b->paused = false;
    if (b->fd < 0 || closed_) continue;  // detached meanwhile (DetachSsl closed its poller)
    b->poller.Rearm();
    OnUdpReadable(b, 0);
  }
  resuming_.clear();
}

// SSL VPN: a TUN write usually makes the TUN readable before write() returns. The kernel forwards
// the packets in this thread's softirq (tun_get_user -> netif_rx), and a local TCP receiver answers
// with its ACK there, which the route brings straight back into the TUN's queue. Reading it now
// saves a separate poll wake-up (and an event-loop turn) per burst; when nothing is queued it costs
// one read() that returns EAGAIN. Packets still queued later wake the TUN poll as before.
VPCGW_PACKET_STEP void Engine::ReadTunAfterWrite() {
  if (closed_ || tunFd_ < 0) return;
  double before = st()[kTunRxPackets];
  OnTunReadable(0);
  if (st()[kTunRxPackets] != before) st()[kTunReadsAfterWrite] += 1;
}

VPCGW_PACKET_STEP void Engine::Inbound(Bind* b, uint32_t j, size_t len) {
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
  // authenticated: a datagram from another address:port moves the SA's peer (NAT rebinding)
  if (__builtin_expect(it->second->toLen != 0 && !SameEndpoint(rxAddr_[j], it->second->to), 0))
    PeerMoved(it->second.get(), rxAddr_[j]);
  if (__builtin_expect(policyIn_, 0) &&
      policy_.Inbound(base + span.off, span.len, it->second->origin, NowMs()) != policy::kPass)
    return;
  TunOut& t = tunOut_[tunOutCount_++];
  t.data = base + span.off;
  t.len = uint32_t(span.len);
}

VPCGW_PACKET_STEP void Engine::ToControl(Bind* b, uint32_t j, const uint8_t* p, size_t len) {
  if (ctlCount_ == ctlCap_ || ctlBytes_ + len > js_.ctlBuf.count) DeliverJs();
  if (closed_ || ctlBytes_ + len > js_.ctlBuf.count) {
    DropCount(esp::kNoRoom);
    return;
  }
  memcpy(js_.ctlBuf.ptr + ctlBytes_, p, len);
  uint32_t* m = js_.ctlMeta.ptr + ctlCount_ * kCtlStride;
  m[0] = uint32_t(ctlBytes_);
  m[1] = uint32_t(len);
  m[2] = uint32_t(b->index);
  uint8_t* addr = js_.ctlAddr.ptr + size_t(ctlCount_) * kCtlAddrStride;
  StoreEndpoint(&rxAddr_[j], &m[3], addr, &m[4]);
  m[5] = 0;
  if (b->replies) {  // IKE answers (SendControl) go back from the address this reached; JS learns it
    LocalAddr local;
    LocalOf(b, j, &local);
    b->replies->Remember(rxAddr_[j], local);
    m[5] = local.family;
    memcpy(addr + 16, local.addr, 16);
  }
  ctlBytes_ += len;
  ctlCount_++;
  st()[kControlPackets] += 1;
}

VPCGW_PACKET_STEP void Engine::FlushTunOut() {
  uint32_t n = tunOutCount_;
  tunOutCount_ = 0;
  WriteTunQueue(tunOut_.data(), n);
}

// Writes queued packets to the TUN: one write each, or with GRO runs of one TCP flow coalesced
// into super-packets.
void Engine::WriteTunQueue(const TunOut* q, uint32_t n) {
  if (tunFd_ < 0) return;
  if (!gro_) {
    for (uint32_t i = 0; i < n; i++) WriteTunPacket(q[i].data, q[i].len);
    return;
  }
  offload::Coalescer& c = *coalescer_;
  for (uint32_t i = 0; i < n; i++) {
    const TunOut& t = q[i];
    if (c.Pending() && c.Append(t.data, t.len)) continue;
    if (c.Pending()) WriteCoalesced();
    if (!c.Start(t.data, t.len)) WriteTunPacket(t.data, t.len);
  }
  if (c.Pending()) WriteCoalesced();
}

VPCGW_PACKET_STEP void Engine::WriteCoalesced() {
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
  st()[kTunTxBytes] += double(n - offload::kVnetHdrSize);
  if (segs > 1) {
    st()[kGroWrites] += 1;
    st()[kGroSegments] += segs;
  }
}

// TUN -> an SSL session: P_DATA_V2 in place in the tx slot, queued for the session's socket (UDP)
// or framed into the session's output for JS (TCP).
VPCGW_PACKET_STEP void Engine::OutboundSsl(uint32_t slot, size_t len, uint32_t peerId) {
  SslPeer* p = ssl_.Find(peerId);
  if (!p) {
    DropCount(esp::kNoSa);
    return;
  }
  if (p->tcp) {
    ovpn::Span span;
    if (len > maxPacket_ || p->s->Encrypt(TxSlot(slot), kHeadroom, len, slot_, NowMs(), false, &span) != ovpn::kIp) {
      if (len > maxPacket_) p->s->Drop(ovpn::kTooBig);
      st()[kSslDrops] += 1;
      return;
    }
    AppendTcpFrame(p, TxSlot(slot) + span.off, span.len);
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
  e.src = &p->src;
}

// Where a session's decrypted IP packet goes (both transports): dropped and counted (not IPv4 — we
// push no IPv6, so the client's router solicitations end here — or not from the client's virtual
// address), to another client of the pool (JS applies client-to-client policy), or to the TUN.
VPCGW_PACKET_STEP int Engine::SslInnerTarget(SslPeer* peer, const uint8_t* ip, size_t len) {
  if (len < 20 || (ip[0] >> 4) != 4) {
    peer->s->Drop(ovpn::kNotIpv4);
    st()[kSslDrops] += 1;
    return kInnerDrop;
  }
  if (!peer->hasVaddr || memcmp(ip + 12, peer->vaddr, 4) != 0) {
    peer->s->Drop(ovpn::kBadSource);
    st()[kSslDrops] += 1;
    return kInnerDrop;
  }
  if (InPrefix4(ip + 16, peer->clientNet, peer->clientLen) && memcmp(ip + 16, peer->serverAddr, 4) != 0) return kInnerClient;
  return kInnerTun;
}

// SSL socket -> data opcodes of known sessions decrypted in place (to the TUN), the rest to JS.
VPCGW_PACKET_STEP void Engine::InboundSsl(Bind* b, uint32_t j, size_t len) {
  uint8_t* base = rx_.data() + size_t(j) * slot_;
  uint8_t* p = base + kHeadroom;
  const sockaddr_storage& from = rxAddr_[j];
  SslPeer* peer = nullptr;
  uint8_t op = len > 0 ? p[0] >> ovpn::kOpShift : 0;
  if (op == ovpn::kOpDataV2 && len >= 4) {
    peer = ssl_.Find((uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]);
  } else if (op == ovpn::kOpDataV1) {
    // V1 has no peer-id (legacy clients): find the session by its endpoint
    peer = ssl_.FindByEndpoint(b->index, from);
  }
  // control packets, unknown peer-ids and packets from another endpoint (a float: JS decides)
  if (!peer || peer->bind != b->index || !SameEndpoint(peer->to, from)) {
    if (__builtin_expect(sslFloatCheck_, 0) && peer) {
      InboundSslFloat(b, j, len, peer);
      return;
    }
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
  if (b->replies) {
    // authenticated: the session answers from the address the client now reaches (OpenVPN
    // multihome keeps the packet info of the last authenticated datagram the same way)
    LocalAddr local;
    LocalOf(b, j, &local);
    if (local.family != 0 && (local.family != peer->src.family || memcmp(local.addr, peer->src.addr, 16) != 0))
      peer->src = local;
  }
  if (r == ovpn::kPing) return;
  if (r == ovpn::kOcc) {
    ToSslJs(b, j, base + span.off, span.len, peer->s->peerId(), kSslPlaintext);
    return;
  }
  const uint8_t* ip = base + span.off;
  int to = SslInnerTarget(peer, ip, span.len);
  if (to == kInnerDrop) return;
  if (to == kInnerClient) {
    ToSslJs(b, j, ip, span.len, peer->s->peerId(), kSslPlaintext);  // client-to-client: JS policy
    return;
  }
  if (__builtin_expect(policyIn_, 0) &&
      policy_.Inbound(base + span.off, span.len, peer->origin, NowMs()) != policy::kPass)
    return;
  TunOut& t = tunOut_[tunOutCount_++];
  t.data = base + span.off;
  t.len = uint32_t(span.len);
}

// A known session's data packet from another endpoint, with the float check on (SetSslFloatCheck):
// the datagram goes to JS as received only when it authenticates and is no replay here.
void Engine::InboundSslFloat(Bind* b, uint32_t j, size_t len, SslPeer* peer) {
  uint8_t* base = rx_.data() + size_t(j) * slot_;
  if (len > sslFloat_.size()) {
    DropCount(esp::kNoRoom);
    return;
  }
  memcpy(sslFloat_.data(), base + kHeadroom, len);
  ovpn::Span span;
  if (peer->s->Decrypt(base, kHeadroom, len, NowMs(), &span) > ovpn::kOcc) {
    st()[kSslDrops] += 1;
    return;
  }
  ToSslJs(b, j, sslFloat_.data(), len, ovpn::kPeerIdUnset, kSslDatagram);
}

void Engine::SetSslFloatCheck(bool on) {
  sslFloatCheck_ = on;
  if (on) sslFloat_.resize(slot_);
}

// The destination address of rx slot j (family 0 unless the bind reads them).
VPCGW_PACKET_STEP void Engine::LocalOf(const Bind* b, uint32_t j, LocalAddr* out) {
  if (!b->replies) {
    out->family = 0;
    return;
  }
  ReadPktinfo(rxMsgs_[j].msg_hdr, out);
}

void Engine::ToSslJs(Bind* b, uint32_t j, const uint8_t* p, size_t len, uint32_t peerId, uint32_t kind) {
  if (sslCb_.IsEmpty()) {
    DropCount(esp::kNoRoom);
    return;
  }
  if (sslCount_ == sslCap_ || sslBytes_ + len > js_.sslBuf.count) DeliverSsl();
  if (closed_ || sslBytes_ + len > js_.sslBuf.count) {
    DropCount(esp::kNoRoom);
    return;
  }
  if (len > 0) memcpy(js_.sslBuf.ptr + sslBytes_, p, len);
  uint32_t* m = js_.sslMeta.ptr + sslCount_ * kSslStride;
  m[0] = uint32_t(sslBytes_);
  m[1] = uint32_t(len);
  m[2] = uint32_t(b->index);
  StoreEndpoint(&rxAddr_[j], &m[3], js_.sslAddr.ptr + sslCount_ * 16, &m[4]);
  if (b->replies) {  // control answers (UdpHandle.sendTo) and new sessions use it
    LocalAddr local;
    LocalOf(b, j, &local);
    b->replies->Remember(rxAddr_[j], local);
  }
  m[5] = peerId;
  m[6] = kind;
  sslBytes_ += len;
  sslCount_++;
}

VPCGW_PACKET_STEP void Engine::DeliverSsl() {
  if (sslCount_ == 0) return;
  uint32_t n = sslCount_;
  sslCount_ = 0;
  sslBytes_ = 0;
  if (closed_ || sslCb_.IsEmpty()) return;
  st()[kJsCallbacks] += 1;
  CallFromLoop(self_->Env(), async_, self_->Value(), sslCb_.Value(), n);
}

// OpenVPN over TCP, one chunk of one session's stream (called from JS once per socket read):
//  1. the deframer (../core/ovpn-tcp.h) splits the chunk into packets, in place where they lie
//     wholly inside it;
//  2. P_DATA_V2 carrying the session's peer-id, or P_DATA_V1 (no peer-id; the connection is the
//     session), is decrypted in place and checked as InboundSsl checks a datagram (inner source,
//     client-to-client, policy stage), then queued for the TUN;
//  3. everything else is listed for JS in stream order, so the TLS control channel keeps its order;
//  4. the queued packets stay queued (pointing into the chunks, which JS keeps alive) until JS calls
//     FlushSslTcp once per event-loop turn, so the reads of one turn go to the TUN in one batch
//     (GRO-coalesced as FlushTunOut does for UDP; a full queue is written out at once).
int Engine::SslTcpChunk(ovpn::TcpDeframer* d, uint32_t peerId, uint8_t* chunk, size_t n, size_t* pos, uint32_t* list,
                        uint32_t listCap, uint8_t* spill, size_t spillCap, bool* asmQueued) {
  // a packet this stream assembled is still queued: its buffer is reused by the second crossing
  // packet from now (ovpn-tcp.h), so write the queue out before parsing on
  if (*asmQueued && tcpOutCount_ > 0) FlushSslTcp();
  *asmQueued = false;
  if (tcpOut_.empty()) tcpOut_.resize(kReadBatch);
  SslPeer* peer = peerId <= ovpn::kPeerIdUnset ? ssl_.Find(peerId) : nullptr;
  const double now = NowMs();
  uint32_t count = 0;
  size_t spillUsed = 0;
  uint32_t broken = 0;
  while (count < listCap) {
    uint8_t* f;
    size_t len;
    const double copied = d->copiedFrames();
    int r = d->Next(chunk, n, pos, &f, &len);
    if (r == ovpn::kTcpNeedMore) break;
    if (r == ovpn::kTcpBadLength) {
      broken = 1;
      break;
    }
    const bool inChunk = d->copiedFrames() == copied;
    uint8_t op = f[0] >> ovpn::kOpShift;
    bool mine = peer != nullptr &&
                ((op == ovpn::kOpDataV2 && len >= 4 && ((uint32_t(f[1]) << 16) | (uint32_t(f[2]) << 8) | f[3]) == peerId) ||
                 op == ovpn::kOpDataV1);
    const uint8_t* out = f;
    size_t outLen = len;
    uint32_t kind = 0;
    if (mine) {
      if (len > maxPacket_ + kTailroom) {  // what a datagram this long would be (truncated) on UDP
        peer->s->Drop(ovpn::kTooBig);
        st()[kSslDrops] += 1;
        continue;
      }
      ovpn::Span span;
      int dr = peer->s->Decrypt(f, 0, len, now, &span);
      if (dr > ovpn::kOcc) {
        st()[kSslDrops] += 1;
        continue;
      }
      st()[kSslRxPackets] += 1;
      if (dr == ovpn::kPing) continue;
      const uint8_t* ip = f + span.off;
      out = ip;
      outLen = span.len;
      kind = kTcpItemPlain;
      if (dr == ovpn::kIp) {
        int to = SslInnerTarget(peer, ip, span.len);
        if (to == kInnerDrop) continue;
        if (to == kInnerTun) {  // else client-to-client: listed for JS's policy
          if (__builtin_expect(policyIn_, 0) &&
              policy_.Inbound(f + span.off, span.len, peer->origin, now) != policy::kPass)
            continue;
          if (tcpOutCount_ == tcpOut_.size()) FlushSslTcp();
          TunOut& t = tcpOut_[tcpOutCount_++];
          t.data = f + span.off;
          t.len = uint32_t(span.len);
          if (!inChunk) *asmQueued = true;
          continue;
        }
      }
    }
    // for JS: in place in the chunk, or a copy in the spill buffer (a packet that crossed chunks)
    uint32_t* m = list + kTcpListHead + size_t(count) * kTcpItemStride;
    if (inChunk) {
      m[0] = uint32_t(out - chunk);
    } else {
      if (outLen > spillCap - spillUsed) {
        DropCount(esp::kNoRoom);
        continue;
      }
      memcpy(spill + spillUsed, out, outLen);
      m[0] = uint32_t(spillUsed);
      spillUsed += outLen;
      kind |= kTcpItemSpill;
    }
    m[1] = uint32_t(outLen);
    m[2] = kind;
    count++;
  }
  list[0] = uint32_t(*pos);
  list[1] = broken;
  return int(count);
}

// SslTcpChunk's queue to the TUN, as FlushTunOut writes the UDP paths' (a queue of its own: it
// lives across calls from JS, while FlushTunOut's is empty between poll rounds).
void Engine::FlushSslTcp() {
  uint32_t n = tcpOutCount_;
  tcpOutCount_ = 0;
  WriteTunQueue(tcpOut_.data(), n);
}

// OpenVPN over TCP, the send side (OpenVPN's socket.c frames each packet with its 16-bit length on
// a TCP link, as the receive side parses it in ../core/ovpn-tcp.h):
//  1. OutboundSsl (TUN packets routed to the session) and SslSend (JS payloads, keepalive pings)
//     encrypt with the session's ovpn::Session, as for UDP, so the packet-ids of a key form one
//     sequence whichever way a packet came;
//  2. AppendTcpFrame writes length + packet into the session's output buffer (native memory, reused);
//  3. DeliverTcpOut, at the end of the batch (FlushTx) or of the JS call, copies each session's
//     output into one Buffer and hands all of them to JS in one callback; JS writes each with one
//     socket.write. Between engine calls no output is pending, so control packets JS writes to the
//     same socket keep their order relative to data packets.
bool Engine::SetSslTcp(uint32_t peerId, bool on) {
  SslPeer* p = ssl_.Find(peerId);
  if (!p) return false;
  p->tcp = on;
  return true;
}

VPCGW_PACKET_STEP void Engine::AppendTcpFrame(SslPeer* p, const uint8_t* pkt, size_t len) {
  size_t used = p->tcpQueued ? p->tcpLen : 0;
  size_t end = used + ovpn::kTcpLengthSize + len;
  if (end > kTcpOutMaxBytes || tcpOutCb_.IsEmpty()) {
    p->s->Drop(ovpn::kNoBind);
    st()[kSslDrops] += 1;
    return;
  }
  if (!p->tcpQueued) {
    p->tcpQueued = true;
    p->tcpFrames = 0;
    tcpPending_.push_back(p);
  }
  if (end > p->tcpOut.size()) p->tcpOut.resize(std::max(end, std::min(kTcpOutMaxBytes, p->tcpOut.size() * 2)));
  uint8_t* o = p->tcpOut.data() + used;
  o[0] = uint8_t(len >> 8);
  o[1] = uint8_t(len);
  memcpy(o + ovpn::kTcpLengthSize, pkt, len);
  p->tcpLen = end;
  p->tcpFrames++;
  st()[kSslTxPackets] += 1;
}

void Engine::DeliverTcpOut(bool inLoop) {
  if (tcpPending_.empty()) return;
  if (closed_ || tcpOutCb_.IsEmpty()) {
    for (SslPeer* p : tcpPending_) p->tcpQueued = false;
    tcpPending_.clear();
    return;
  }
  napi_env env = self_->Env();
  Napi::HandleScope scope(env);
  Napi::Array list = Napi::Array::New(env, tcpPending_.size() * 3);
  uint32_t i = 0;
  for (SslPeer* p : tcpPending_) {
    p->tcpQueued = false;
    list.Set(i++, Napi::Number::New(env, p->s->peerId()));
    list.Set(i++, Napi::Buffer<uint8_t>::Copy(env, p->tcpOut.data(), p->tcpLen));
    list.Set(i++, Napi::Number::New(env, p->tcpFrames));
  }
  tcpPending_.clear();  // before JS runs: it may send again (SslSend) or remove sessions
  st()[kJsCallbacks] += 1;
  napi_value argv[1] = {list};
  if (inLoop) {
    CallFromLoop(env, async_, self_->Value(), tcpOutCb_.Value(), 1, argv);
  } else {
    napi_value result;
    napi_call_function(env, self_->Value(), tcpOutCb_.Value(), 1, argv, &result);  // an exception propagates to the JS caller
  }
}

void Engine::OnPollClosed(void* owner) {
  Bind* b = static_cast<Bind*>(owner);
  Engine* self = b->owner;
  if (--self->closing_ == 0) {
    Napi::HandleScope scope(self->self_->Env());
    if (!self->cb_.IsEmpty()) self->cb_.Reset();
    if (self->async_) {
      napi_async_destroy(self->self_->Env(), self->async_);
      self->async_ = nullptr;
    }
    self->self_->Unref();
  }
}

}  // namespace vpcgw

namespace vpcgw {

// ------------------------------------------------------------------ test seams (no sockets)

int Engine::AddTestBind(bool ssl, int sockFamily) {
  auto b = std::make_unique<Bind>();
  b->owner = this;
  b->index = int(binds_.size());
  b->fd = -1;
  b->ssl = ssl;
  b->sockFamily = sockFamily;
  b->replies = std::make_shared<ReplySources>();
  binds_.push_back(std::move(b));
  return int(binds_.size()) - 1;
}

void Engine::DemuxForTest(int bind, const uint8_t* data, size_t len, const sockaddr_storage& from,
                          const LocalAddr& local) {
  if (bind < 0 || bind >= int(binds_.size()) || closed_) return;
  Bind* b = binds_[bind].get();
  if (len > maxPacket_ + kTailroom) {  // what recvmmsg would report as truncated
    st()[kTruncated] += 1;
    return;
  }
  if (len > 0) memcpy(rx_.data() + kHeadroom, data, len);
  rxAddr_[0] = from;
  // the control message recvmmsg would have filled in (IP_PKTINFO / IPV6_PKTINFO: ipi_addr)
  msghdr& h = rxMsgs_[0].msg_hdr;
  h.msg_control = rxCtrl_.data();
  h.msg_controllen = 0;
  cmsghdr* c = reinterpret_cast<cmsghdr*>(rxCtrl_.data());
  if (local.family == 4) {
    in_pktinfo pi{};
    memcpy(&pi.ipi_addr, local.addr, 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    h.msg_controllen = CMSG_SPACE(sizeof pi);
  } else if (local.family == 6) {
    in6_pktinfo pi{};
    memcpy(&pi.ipi6_addr, local.addr, 16);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    h.msg_controllen = CMSG_SPACE(sizeof pi);
  }
  depth_++;
  st()[kUdpRxDatagrams] += 1;
  if (b->ssl)
    InboundSsl(b, 0, len);
  else
    Inbound(b, 0, len);
  FlushTunOut();
  DeliverJs();
  depth_--;
  if (depth_ == 0) {
    graveyard_.clear();
    ssl_.Release();
  }
}

}  // namespace vpcgw
