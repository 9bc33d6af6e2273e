// Answering from the address a peer reached, on sockets bound to the wildcard address (0.0.0.0 or
// ::) of a gateway with several public addresses.
//
// A reply sent on a wildcard socket without a source address leaves from whatever address the
// route to the peer picks. A peer that reached address B over the interface holding address A
// would then see the answer come from A and drop it: strongSwan matches IKE responses and ESP to
// the address it sent to, the OpenVPN client ignores datagrams from another address than its
// `remote`. Like OpenVPN's `multihome` (socket.c: the packet info of the last datagram of a peer
// is kept with the peer and used for its replies) and strongSwan's socket-default plugin
// (IP_PKTINFO on receive, then the message's source on send), we:
//   1. turn on IP_PKTINFO / IPV6_RECVPKTINFO on wildcard sockets (EnablePktinfo) and read the
//      destination address of each datagram from its control message (ReadPktinfo);
//   2. remember, per remote address:port, the local address it last reached (ReplySources, one
//      table per socket, shared by the socket's UdpHandle and the data-plane engine polling it);
//   3. send replies with that source in an IP_PKTINFO / IPV6_PKTINFO control message (PutSrcCmsg;
//      ipi_spec_dst for IPv4, ipi6_addr for IPv6). The data path keeps the source with the ESP SA
//      or SSL session, so its batches never look the table up.
// Sockets bound to one address never enable any of this (the kernel already answers from it).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace vpcgw {

// A local address in the batch layout (family 4 or 6, address in the first 4 or 16 bytes); family 0
// means "not known": the kernel picks the source by route.
struct LocalAddr {
  uint8_t family = 0;
  uint8_t addr[16] = {0};
};

// Room for one source-address control message (in6_pktinfo is the larger of the two).
constexpr size_t kSrcCmsgSpace = CMSG_SPACE(sizeof(in6_pktinfo));
// Room for the control messages of one received datagram (a dual-stack socket may get either).
constexpr size_t kRecvCtrlSpace = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));

// Whether the socket is bound to 0.0.0.0 or :: (then its replies need an explicit source).
inline bool IsWildcardSocket(int fd) {
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) return false;
  if (ss.ss_family == AF_INET) return reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (ss.ss_family == AF_INET6) {
    static const in6_addr any = IN6ADDR_ANY_INIT;
    return memcmp(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, &any, 16) == 0;
  }
  return false;
}

// Asks the kernel for each datagram's destination address. On an IPv6 socket IPv4 peers (v4-mapped)
// report through IP_PKTINFO, so both are set there.
inline bool EnablePktinfo(int fd, int sockFamily) {
  int one = 1;
  bool v4 = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) == 0;
  if (sockFamily == AF_INET) return v4;
  return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) == 0;
}

// The destination address of a received datagram (its header's destination, ipi_addr), or family 0.
inline void ReadPktinfo(const msghdr& h, LocalAddr* out) {
  out->family = 0;
  if (h.msg_control == nullptr || h.msg_controllen < sizeof(cmsghdr)) return;
  msghdr& m = const_cast<msghdr&>(h);
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      out->family = 4;
      memset(out->addr, 0, 16);
      memcpy(out->addr, &pi.ipi_addr, 4);
      return;
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)) {
        out->family = 4;
        memset(out->addr, 0, 16);
        memcpy(out->addr, &pi.ipi6_addr.s6_addr[12], 4);
      } else {
        out->family = 6;
        memcpy(out->addr, &pi.ipi6_addr, 16);
      }
      return;
    }
  }
}

// Writes a control message that makes the datagram leave from `src` into `ctrl` (kSrcCmsgSpace
// bytes); returns the bytes used, 0 when `src` is unknown or does not fit the socket.
inline size_t PutSrcCmsg(uint8_t* ctrl, int sockFamily, const LocalAddr& src) {
  cmsghdr* c = reinterpret_cast<cmsghdr*>(ctrl);
  if (src.family == 4) {
    memset(ctrl, 0, CMSG_SPACE(sizeof(in_pktinfo)));
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi_spec_dst, src.addr, 4);  // the source; ifindex 0: the route picks the interface
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof(in_pktinfo));
  }
  if (src.family == 6 && sockFamily == AF_INET6) {
    memset(ctrl, 0, CMSG_SPACE(sizeof(in6_pktinfo)));
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi6_addr, src.addr, 16);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof(in6_pktinfo));
  }
  return 0;
}

// Per remote address:port, the local address it last reached us on. Used on control paths only
// (datagrams handed to JavaScript, sends JavaScript originates, SA and session installs); locked,
// because a multi-queue worker's engine may poll a socket whose UdpHandle lives on the main thread.
class ReplySources {
 public:
  // Beyond this many remotes the table starts over (a flood of spoofed sources cannot grow it).
  static constexpr size_t kMaxEntries = 65536;

  void Remember(const sockaddr_storage& from, const LocalAddr& local) {
    Key k;
    if (local.family == 0 || !MakeKey(from, &k)) return;
    std::lock_guard<std::mutex> g(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) {
      it->second = local;
      return;
    }
    if (map_.size() >= kMaxEntries) map_.clear();
    map_.emplace(k, local);
  }

  bool Lookup(const sockaddr_storage& to, LocalAddr* out) const {
    Key k;
    out->family = 0;
    if (!MakeKey(to, &k)) return false;
    std::lock_guard<std::mutex> g(mu_);
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    *out = it->second;
    return true;
  }

 private:
  struct Key {
    uint8_t addr[16];  // IPv4 as v4-mapped, so v4 and dual-stack sockets agree
    uint16_t port;
    bool operator==(const Key& o) const { return port == o.port && memcmp(addr, o.addr, 16) == 0; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = 1469598103934665603ull;  // FNV-1a
      for (int i = 0; i < 16; i++) h = (h ^ k.addr[i]) * 1099511628211ull;
      return size_t((h ^ k.port) * 1099511628211ull);
    }
  };

  static bool MakeKey(const sockaddr_storage& ss, Key* k) {
    memset(k, 0, sizeof *k);
    if (ss.ss_family == AF_INET) {
      const sockaddr_in* s = reinterpret_cast<const sockaddr_in*>(&ss);
      k->addr[10] = 0xff;
      k->addr[11] = 0xff;
      memcpy(&k->addr[12], &s->sin_addr, 4);
      k->port = s->sin_port;
      return true;
    }
    if (ss.ss_family == AF_INET6) {
      const sockaddr_in6* s = reinterpret_cast<const sockaddr_in6*>(&ss);
      memcpy(k->addr, &s->sin6_addr, 16);
      k->port = s->sin6_port;
      return true;
    }
    return false;
  }

  mutable std::mutex mu_;
  std::unordered_map<Key, LocalAddr, KeyHash> map_;
};

// The reply-source table of a socket by descriptor: created by the socket's owner (UdpHandle, for a
// wildcard bind), found by the engine when it attaches the descriptor, dropped when the socket
// closes. Inline with one function-local registry (C++17 gives it a single instance).
// The sockets of one SO_REUSEPORT group (the multi-queue data plane: one per queue on one port)
// share one table: IKE reaches the group's first socket, while an SA's ESP may leave from another.
struct ReplySourceRegistry {
  std::mutex mu;
  std::unordered_map<int, std::shared_ptr<ReplySources>> byFd;
  std::unordered_map<uint32_t, std::weak_ptr<ReplySources>> byGroup;  // (family << 16 | port)
  static ReplySourceRegistry& Get() {
    static ReplySourceRegistry r;
    return r;
  }
};

// `group`: nonzero (family << 16 | port) for a member of an SO_REUSEPORT group, else 0.
inline std::shared_ptr<ReplySources> RegisterReplySources(int fd, uint32_t group) {
  ReplySourceRegistry& r = ReplySourceRegistry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  std::shared_ptr<ReplySources> t;
  if (group != 0) t = r.byGroup[group].lock();
  if (!t) t = std::make_shared<ReplySources>();
  if (group != 0) r.byGroup[group] = t;
  r.byFd[fd] = t;
  return t;
}

inline std::shared_ptr<ReplySources> FindReplySources(int fd) {
  ReplySourceRegistry& r = ReplySourceRegistry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.byFd.find(fd);
  return it == r.byFd.end() ? nullptr : it->second;
}

inline void ForgetReplySources(int fd) {
  ReplySourceRegistry& r = ReplySourceRegistry::Get();
  std::lock_guard<std::mutex> g(r.mu);
  r.byFd.erase(fd);
}

}  // namespace vpcgw
