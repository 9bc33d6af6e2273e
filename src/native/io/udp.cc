// UDP socket with batch I/O: recvmmsg straight into PacketBatch slots (sender endpoint into the
// batch's per-slot family/addr/port arrays) and sendmmsg from batch slots to per-slot endpoints.
//
// Receive path:
//   1. uv_poll reports readable, or POLLERR (libuv then stops the handle): on error we drain the
//      socket error queue (IP_RECVERR: ICMP unreachable, port unreachable...), clear SO_ERROR,
//      count, and re-arm. An ICMP error never leaves the socket deaf.
//   2. recvmmsg into slots n..capacity-1; a truncated datagram (bigger than the slot) is dropped and
//      counted; the JS callback runs once per filled batch, at most kMaxRoundsPerWake per wake-up.
// A wildcard socket (0.0.0.0 / ::) also reads each datagram's destination address (IP_PKTINFO) and
// remembers it per sender; send/sendTo then answer each remote from the address it reached
// (pktinfo.h explains why and how the data-plane engine shares the table).
//
// Later: UDP_SEGMENT (GSO) on send and UDP_GRO on receive fit in SendChunk / OnPoll.
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../napi-util.h"
#include "../core/sockaddr.h"
#include "pktinfo.h"

namespace vpcgw {
namespace {

constexpr int kMaxRoundsPerWake = 8;
constexpr uint32_t kSendChunk = 64;
constexpr int kBufferBytes = 32 * 1024 * 1024;
// Socket option bits (6th constructor argument), mirrored in src/net/native-udp.ts.
constexpr uint32_t kFlagReuseAddr = 1;  // SO_REUSEADDR (off by default: a second gateway must fail to bind)
constexpr uint32_t kFlagReusePort = 2;  // SO_REUSEPORT (multi-queue: one socket per queue on one port)

// Indices into the stats Float64Array (mirrored in src/native/loader.ts).
enum UdpStat {
  kRxPackets = 0,
  kRxBytes,
  kTxPackets,
  kTxBytes,
  kSendErrors,
  kRecvErrors,
  kRecvBatches,
  kPollErrors,
  kIcmpErrors,
  kTruncated,
  kUdpStatCount
};

// Errors that report an earlier ICMP message (or a transient route problem), not this datagram.
bool IsIcmpErrno(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ENETDOWN ||
         e == EPROTO || e == ENOPROTOOPT || e == ECONNRESET || e == EMSGSIZE;
}

void SetBuf(int fd, int force, int plain, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

class UdpHandle : public Napi::ObjectWrap<UdpHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpHandle",
                       {
                           InstanceAccessor<&UdpHandle::GetPort>("port"),
                           InstanceAccessor<&UdpHandle::GetFd>("fd"),
                           InstanceMethod<&UdpHandle::Start>("start"),
                           InstanceMethod<&UdpHandle::Send>("send"),
                           InstanceMethod<&UdpHandle::SendTo>("sendTo"),
                           InstanceMethod<&UdpHandle::Close>("close"),
                           InstanceMethod<&UdpHandle::SteerBySpi>("steerBySpi"),
                           InstanceMethod<&UdpHandle::SteerByPeerId>("steerByPeerId"),
                       });
  }

  // new UdpHandle(family: 4|6, addr: Buffer(4|16), port, ipv6Only: boolean, stats: Float64Array,
  //               flags?: kFlagReuseAddr | kFlagReusePort)
  explicit UdpHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpHandle>(info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 5 || !info[0].IsNumber() || !GetRaw(env, info[1], &a) || !info[2].IsNumber() ||
        !stats_.Pin(env, info[4]) || stats_.count < kUdpStatCount) {
      ThrowType(env, "UdpHandle(family, addr, port, ipv6Only, stats)");
      return;
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    uint32_t port = info[2].As<Napi::Number>().Uint32Value();
    bool v6only = info[3].ToBoolean().Value();
    if ((fam != 4 && fam != 6) || a.bytes != (fam == 4 ? 4u : 16u) || port > 65535) {
      ThrowType(env, "UdpHandle: bad family/address/port");
      return;
    }
    sockFamily_ = fam == 4 ? AF_INET : AF_INET6;
    int fd = socket(sockFamily_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ThrowErrno(env, "socket", errno);
      return;
    }
    int one = 1, zero = 0;
    uint32_t flags = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Uint32Value() : 0;
    if (flags & kFlagReuseAddr) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((flags & kFlagReusePort) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      int e = errno;
      close(fd);
      ThrowErrno(env, "setsockopt(SO_REUSEPORT)", e);
      return;
    }
    SetBuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, kBufferBytes);
    SetBuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, kBufferBytes);
    // ICMP errors go to the error queue (drained and counted on POLLERR) instead of being ignored.
    setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
    if (sockFamily_ == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero, sizeof one);
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
    }
    sockaddr_storage ss;
    socklen_t sl = MakeSockaddr(&ss, sockFamily_, static_cast<uint8_t>(fam), a.data, static_cast<uint16_t>(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
      int e = errno;
      close(fd);
      ThrowErrno(env, "bind", e);
      return;
    }
    sl = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
    port_ = ntohs(sockFamily_ == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    fd_ = fd;
    sendMsgs_.resize(kSendChunk);
    sendIov_.resize(kSendChunk);
    sendAddr_.resize(kSendChunk);
    if (IsWildcardSocket(fd) && EnablePktinfo(fd, sockFamily_)) {
      uint32_t group = (flags & kFlagReusePort) ? (uint32_t(fam) << 16 | port_) : 0;
      replies_ = RegisterReplySources(fd, group);
      sendCtrl_.resize(kSendChunk * kSrcCmsgSpace);
    }
  }

  ~UdpHandle() override {
    if (fd_ < 0) return;
    if (replies_) ForgetReplySources(fd_);
    close(fd_);
  }

 private:
  Napi::Value GetPort(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // steerBySpi(groupSize): attaches a classic BPF program to this socket's SO_REUSEPORT group that
  // picks the group member by the first 4 payload bytes modulo groupSize, i.e. by ESP SPI
  // (RFC 4303 §2.1, network order). Members are numbered in bind order. The non-ESP marker (IKE,
  // RFC 3948 §2.2: 0) and NAT-T keepalives (1 byte: the load fails, the program returns 0) go to
  // member 0. Without it the kernel hashes the 4-tuple, and a replayed packet with another source
  // port would reach a queue whose replay window never saw it.
  Napi::Value SteerBySpi(const Napi::CallbackInfo& info) {
    uint32_t n = 0;
    if (!SteeringGroupSize(info, "steerBySpi", &n)) return info.Env().Undefined();
    sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, 0},  // A = payload[0..3] (data starts after the UDP header)
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, n},  // A = A % n
        {BPF_RET | BPF_A, 0, 0, 0},            // member index
    };
    AttachSteering(info.Env(), code, sizeof code / sizeof code[0]);
    return info.Env().Undefined();
  }

  // steerByPeerId(groupSize): the OpenVPN twin of steerBySpi for the SSL VPN's UDP group. P_DATA_V2
  // (opcode 9 in the top 5 bits of byte 0) goes to member (peer-id % groupSize), the peer-id being
  // bytes 1..3; everything else (control, P_DATA_V1, hard resets) to member 0. A datagram shorter
  // than 4 bytes fails the word load, which ends the program with 0: member 0 as well.
  Napi::Value SteerByPeerId(const Napi::CallbackInfo& info) {
    uint32_t n = 0;
    if (!SteeringGroupSize(info, "steerByPeerId", &n)) return info.Env().Undefined();
    sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, 0},         // A = payload[0..3] (0 when shorter: member 0)
        {BPF_MISC | BPF_TAX, 0, 0, 0},               // X = A
        {BPF_ALU | BPF_RSH | BPF_K, 0, 0, 27},       // A = opcode (byte 0 >> 3)
        {BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 9},        // P_DATA_V2?
        {BPF_RET | BPF_K, 0, 0, 0},                  // no: member 0
        {BPF_MISC | BPF_TXA, 0, 0, 0},               // A = X
        {BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xffffff},  // A = peer-id
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, n},         // A = peer-id % n
        {BPF_RET | BPF_A, 0, 0, 0},                   // member index
    };
    AttachSteering(info.Env(), code, sizeof code / sizeof code[0]);
    return info.Env().Undefined();
  }

  // The group size argument of a steering method (1..256 members), or false with a TypeError thrown.
  bool SteeringGroupSize(const Napi::CallbackInfo& info, const char* method, uint32_t* n) {
    uint32_t v = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    if (fd_ < 0 || v < 1 || v > 256) {
      ThrowType(info.Env(), (std::string(method) + "(groupSize 1..256) on an open socket").c_str());
      return false;
    }
    *n = v;
    return true;
  }

  // Attaches a classic BPF program as this socket's SO_REUSEPORT group's member selector.
  void AttachSteering(Napi::Env env, sock_filter* code, size_t count) {
    sock_fprog prog = {static_cast<unsigned short>(count), code};
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0) {
      ThrowErrno(env, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", errno);
    }
  }

  // start(buf, off, len, family, addr, port, capacity, slotSize, headroom, readMax, cb,
  //       localFamily?: Uint8Array(capacity), localAddr?: Uint8Array(capacity * 16))
  // With the optional arrays, a wildcard socket also reports each datagram's destination address
  // (family 0 when the socket is bound to one address).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      ThrowErrno(env, "start", EBADF);
      return env.Undefined();
    }
    if (poller_.Active()) {
      ThrowErrno(env, "start", EALREADY);
      return env.Undefined();
    }
    if (info.Length() < 11 || !info[10].IsFunction() || !buf_.Pin(env, info[0]) || !off_.Pin(env, info[1]) ||
        !len_.Pin(env, info[2]) || !fam_.Pin(env, info[3]) || !addr_.Pin(env, info[4]) || !port_arr_.Pin(env, info[5])) {
      ReleaseBatch();
      ThrowType(env, "start(buf, off, len, family, addr, port, capacity, slotSize, headroom, readMax, cb)");
      return env.Undefined();
    }
    capacity_ = info[6].As<Napi::Number>().Uint32Value();
    slot_ = info[7].As<Napi::Number>().Uint32Value();
    headroom_ = info[8].As<Napi::Number>().Uint32Value();
    readMax_ = info[9].As<Napi::Number>().Uint32Value();
    if (capacity_ == 0 || capacity_ > off_.count || capacity_ > len_.count || capacity_ > fam_.count ||
        capacity_ > port_arr_.count || static_cast<size_t>(capacity_) * 16 > addr_.count ||
        headroom_ + readMax_ > slot_ || static_cast<size_t>(capacity_) * slot_ > buf_.count) {
      ReleaseBatch();
      ThrowType(env, "start: batch geometry does not fit its buffers");
      return env.Undefined();
    }
    recvMsgs_.assign(capacity_, mmsghdr{});
    recvIov_.resize(capacity_);
    recvAddr_.resize(capacity_);
    if (replies_) recvCtrl_.assign(size_t(capacity_) * kRecvCtrlSpace, 0);
    for (uint32_t i = 0; i < capacity_; i++) {
      recvIov_[i].iov_base = buf_.ptr + i * slot_ + headroom_;
      recvIov_[i].iov_len = readMax_;
      msghdr& h = recvMsgs_[i].msg_hdr;
      h.msg_name = &recvAddr_[i];
      h.msg_iov = &recvIov_[i];
      h.msg_iovlen = 1;
      if (replies_) h.msg_control = recvCtrl_.data() + size_t(i) * kRecvCtrlSpace;
    }
    if (info.Length() >= 13 && localFam_.Pin(env, info[11]) && localAddr_.Pin(env, info[12]) &&
        (capacity_ > localFam_.count || size_t(capacity_) * 16 > localAddr_.count)) {
      ReleaseBatch();
      ThrowType(env, "start: the local address arrays do not fit the batch");
      return env.Undefined();
    }
    cb_ = Napi::Persistent(info[10].As<Napi::Function>());
    napi_async_init(env, Value(), Napi::String::New(env, "vpcgw:udp"), &async_);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = poller_.Start(loop, fd_, this, &UdpHandle::OnPollThunk);
    if (rc != 0) {
      ReleaseBatch();
      ThrowErrno(env, "uv_poll_start", -rc);
      return env.Undefined();
    }
    Ref();
    return env.Undefined();
  }

  static void OnPollThunk(void* owner, int status, int events) { static_cast<UdpHandle*>(owner)->OnPoll(status); }


  // Reads and counts queued ICMP errors (IP_RECVERR), then clears the pending socket error.
  void DrainErrors() { stats_.ptr[kIcmpErrors] += DrainErrorQueue(fd_); }

  void OnPoll(int status) {
    double* st = stats_.ptr;
    if (status < 0) {
      st[kPollErrors] += 1;
      DrainErrors();
      poller_.Rearm();
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    int errorsThisWake = 0;
    for (int round = 0; round < kMaxRoundsPerWake && fd_ >= 0; round++) {
      uint32_t n = 0;
      bool drained = false;
      while (n < capacity_) {
        for (uint32_t i = n; i < capacity_; i++) {
          recvMsgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
          if (replies_) recvMsgs_[i].msg_hdr.msg_controllen = kRecvCtrlSpace;
        }
        int r = recvmmsg(fd_, &recvMsgs_[n], capacity_ - n, MSG_DONTWAIT, nullptr);
        if (r < 0) {
          int e = errno;
          if (e == EINTR) continue;
          if (e == EAGAIN || e == EWOULDBLOCK) {
            drained = true;
            break;
          }
          st[kRecvErrors] += 1;
          if (IsIcmpErrno(e)) DrainErrors();
          if (!IsIcmpErrno(e) || ++errorsThisWake > 16) {
            drained = true;
            break;
          }
          continue;
        }
        // Keep the good datagrams contiguous; truncated ones (bigger than a slot) are dropped.
        uint32_t w = n;
        for (uint32_t j = n; j < n + static_cast<uint32_t>(r); j++) {
          const mmsghdr& m = recvMsgs_[j];
          if (m.msg_hdr.msg_flags & MSG_TRUNC) {
            st[kTruncated] += 1;
            st[kRecvErrors] += 1;
            continue;
          }
          uint32_t ow = w * slot_ + headroom_;
          if (w != j) memmove(buf_.ptr + ow, buf_.ptr + j * slot_ + headroom_, m.msg_len);
          off_.ptr[w] = ow;
          len_.ptr[w] = m.msg_len;
          StoreEndpoint(&recvAddr_[j], &fam_.ptr[w], addr_.ptr + w * 16, &port_arr_.ptr[w]);
          if (replies_) {
            LocalAddr local;
            ReadPktinfo(m.msg_hdr, &local);
            replies_->Remember(recvAddr_[j], local);
            if (localFam_.ptr) {
              localFam_.ptr[w] = local.family;
              memcpy(localAddr_.ptr + size_t(w) * 16, local.addr, 16);
            }
          } else if (localFam_.ptr) {
            localFam_.ptr[w] = 0;
          }
          st[kRxPackets] += 1;
          st[kRxBytes] += m.msg_len;
          w++;
        }
        n = w;
      }
      if (n > 0) {
        st[kRecvBatches] += 1;
        CallFromLoop(env, async_, Value(), cb_.Value(), n);
      }
      if (drained) break;
    }
  }

  // Sends msgs[0..k) with sendmmsg, handling partial sends and per-datagram errors. Returns sent.
  uint32_t SendChunk(uint32_t k) {
    double* st = stats_.ptr;
    uint32_t p = 0, sent = 0;
    int retries = 0;
    while (p < k) {
      int r = sendmmsg(fd_, &sendMsgs_[p], k - p, MSG_DONTWAIT);
      if (r > 0) {
        for (int j = 0; j < r; j++) st[kTxBytes] += sendMsgs_[p + j].msg_len;
        st[kTxPackets] += r;
        sent += r;
        p += r;
        continue;
      }
      int e = errno;
      if (r < 0 && e == EINTR) continue;
      st[kSendErrors] += 1;
      if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)) {
        // Socket buffer full: drop the rest of this chunk (counted), as a NIC queue would.
        st[kSendErrors] += (k - p - 1);
        break;
      }
      if (r < 0 && IsIcmpErrno(e) && e != EMSGSIZE && retries++ < 4) continue;  // error was for an earlier datagram
      p++;  // this datagram is refused (EMSGSIZE, EINVAL, EPERM by a firewall...): skip it
    }
    return sent;
  }

  // A wildcard socket answers a remote from the address it last reached (pktinfo.h).
  void AddReplySource(msghdr* h, uint32_t k) {
    if (!replies_) return;
    LocalAddr src;
    if (!replies_->Lookup(sendAddr_[k], &src)) return;
    uint8_t* ctrl = sendCtrl_.data() + size_t(k) * kSrcCmsgSpace;
    size_t n = PutSrcCmsg(ctrl, sockFamily_, src);
    if (n == 0) return;
    h->msg_control = ctrl;
    h->msg_controllen = n;
  }

  // send(buf, off, len, family, addr, port, count) -> datagrams sent
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, o, l, f, a, pt;
    if (info.Length() < 7 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[1], &o) || !GetRaw(env, info[2], &l) ||
        !GetRaw(env, info[3], &f) || !GetRaw(env, info[4], &a) || !GetRaw(env, info[5], &pt)) {
      ThrowType(env, "send(buf, off, len, family, addr, port, count)");
      return env.Undefined();
    }
    if (fd_ < 0) return Napi::Number::New(env, 0);
    const uint32_t* off = reinterpret_cast<const uint32_t*>(o.data);
    const uint32_t* len = reinterpret_cast<const uint32_t*>(l.data);
    const uint16_t* port = reinterpret_cast<const uint16_t*>(pt.data);
    uint32_t count = info[6].As<Napi::Number>().Uint32Value();
    size_t maxCount = std::min({o.bytes / 4, l.bytes / 4, f.bytes, a.bytes / 16, pt.bytes / 2});
    if (count > maxCount) count = static_cast<uint32_t>(maxCount);
    double* st = stats_.ptr;
    uint32_t sent = 0, k = 0;
    for (uint32_t i = 0; i < count; i++) {
      uint64_t end = static_cast<uint64_t>(off[i]) + len[i];
      socklen_t sl = 0;
      if (end <= b.bytes) sl = MakeSockaddr(&sendAddr_[k], sockFamily_, f.data[i], a.data + i * 16, port[i]);
      if (sl == 0) {
        st[kSendErrors] += 1;
        continue;
      }
      sendIov_[k].iov_base = b.data + off[i];
      sendIov_[k].iov_len = len[i];
      msghdr& h = sendMsgs_[k].msg_hdr;
      memset(&h, 0, sizeof h);
      h.msg_name = &sendAddr_[k];
      h.msg_namelen = sl;
      h.msg_iov = &sendIov_[k];
      h.msg_iovlen = 1;
      AddReplySource(&h, k);
      if (++k == kSendChunk) {
        sent += SendChunk(k);
        k = 0;
      }
    }
    if (k > 0) sent += SendChunk(k);
    return Napi::Number::New(env, sent);
  }

  // sendTo(data: Uint8Array, family, addr: Uint8Array(4|16), port) -> boolean (sent)
  Napi::Value SendTo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView d, a;
    if (info.Length() < 4 || !GetRaw(env, info[0], &d) || !GetRaw(env, info[2], &a) || a.bytes < 4) {
      ThrowType(env, "sendTo(data, family, addr, port)");
      return env.Undefined();
    }
    if (fd_ < 0) return Napi::Boolean::New(env, false);
    uint8_t fam = static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value());
    uint16_t port = static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value());
    uint8_t addr16[16] = {0};
    memcpy(addr16, a.data, std::min<size_t>(a.bytes, 16));
    socklen_t sl = MakeSockaddr(&sendAddr_[0], sockFamily_, fam, addr16, port);
    if (sl == 0 || (fam == 6 && a.bytes < 16)) {
      stats_.ptr[kSendErrors] += 1;
      return Napi::Boolean::New(env, false);
    }
    sendIov_[0].iov_base = d.data;
    sendIov_[0].iov_len = d.bytes;
    msghdr& h = sendMsgs_[0].msg_hdr;
    memset(&h, 0, sizeof h);
    h.msg_name = &sendAddr_[0];
    h.msg_namelen = sl;
    h.msg_iov = &sendIov_[0];
    h.msg_iovlen = 1;
    AddReplySource(&h, 0);
    return Napi::Boolean::New(env, SendChunk(1) == 1);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ < 0) return info.Env().Undefined();
    bool deferred = poller_.Close(&UdpHandle::OnPollClosed);
    if (replies_) ForgetReplySources(fd_);
    close(fd_);
    fd_ = -1;
    if (!deferred) ReleaseBatch();
    return info.Env().Undefined();
  }

  static void OnPollClosed(void* owner) {
    UdpHandle* self = static_cast<UdpHandle*>(owner);
    Napi::HandleScope scope(self->Env());
    self->ReleaseBatch();
    self->Unref();
  }

  void ReleaseBatch() {
    buf_.Release();
    off_.Release();
    len_.Release();
    fam_.Release();
    addr_.Release();
    port_arr_.Release();
    localFam_.Release();
    localAddr_.Release();
    if (!cb_.IsEmpty()) cb_.Reset();
    if (async_) {
      napi_async_destroy(Env(), async_);
      async_ = nullptr;
    }
  }

  int fd_ = -1;
  int sockFamily_ = AF_INET;
  uint32_t port_ = 0;
  Poller poller_;
  Pinned<double> stats_;
  Pinned<uint8_t> buf_;
  Pinned<uint32_t> off_;
  Pinned<uint32_t> len_;
  Pinned<uint8_t> fam_;
  Pinned<uint8_t> addr_;
  Pinned<uint16_t> port_arr_;
  Pinned<uint8_t> localFam_;   // optional: per slot, the destination address family (0: unknown)
  Pinned<uint8_t> localAddr_;  // optional: per slot, the destination address (16 bytes)
  uint32_t capacity_ = 0, slot_ = 0, headroom_ = 0, readMax_ = 0;
  std::vector<mmsghdr> recvMsgs_;
  std::vector<iovec> recvIov_;
  std::vector<sockaddr_storage> recvAddr_;
  std::vector<mmsghdr> sendMsgs_;
  std::vector<iovec> sendIov_;
  std::vector<sockaddr_storage> sendAddr_;
  std::shared_ptr<ReplySources> replies_;  // wildcard sockets only
  std::vector<uint8_t> recvCtrl_;
  std::vector<uint8_t> sendCtrl_;
  Napi::FunctionReference cb_;
  napi_async_context async_ = nullptr;
};

}  // namespace

void InitUdp(Napi::Env env, Napi::Object exports) { exports.Set("UdpHandle", UdpHandle::Define(env)); }

}  // namespace vpcgw
