// UDP socket helpers shared by ../io/udp.cc (UdpHandle) and the data-plane engine (its binds):
// endpoint <-> sockaddr conversion in the batch layout (family 4/6, 16-byte address slot, port) and
// draining the IP_RECVERR error queue. Inline: they run per datagram.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>

namespace vpcgw {

// Fills a sockaddr from (family, 16-byte addr slot, port); a v4 endpoint on a v6 socket is v4-mapped.
// The whole storage is zeroed first. Returns the address length, 0 when the family does not fit the
// socket (a v6 endpoint on a v4 socket) or is neither 4 nor 6.
static inline socklen_t MakeSockaddr(sockaddr_storage* ss, int sockFamily, uint8_t family, const uint8_t* addr,
                                     uint16_t port) {
  memset(ss, 0, sizeof *ss);
  if (sockFamily == AF_INET) {
    if (family != 4) return 0;
    sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, addr, 4);
    return sizeof *sin;
  }
  sockaddr_in6* s6 = reinterpret_cast<sockaddr_in6*>(ss);
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  if (family == 4) {
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6->sin6_addr.s6_addr[12], addr, 4);
  } else if (family == 6) {
    memcpy(&s6->sin6_addr, addr, 16);
  } else {
    return 0;
  }
  return sizeof *s6;
}

// Writes a received sender into endpoint slots (v4-mapped reported as family 4; another address
// family as family 0, port 0). The family and port slots are whatever integer type the batch uses.
template <typename Family, typename Port>
static inline void StoreEndpoint(const sockaddr_storage* ss, Family* family, uint8_t* addr16, Port* port) {
  memset(addr16, 0, 16);
  *family = 0;
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const sockaddr_in* sin = reinterpret_cast<const sockaddr_in*>(ss);
    *family = 4;
    memcpy(addr16, &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const sockaddr_in6* s6 = reinterpret_cast<const sockaddr_in6*>(ss);
    *port = ntohs(s6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      *family = 4;
      memcpy(addr16, &s6->sin6_addr.s6_addr[12], 4);
    } else {
      *family = 6;
      memcpy(addr16, &s6->sin6_addr, 16);
    }
  }
}

// Reads queued ICMP errors (IP_RECVERR; at most 256 per call), then clears the pending socket error.
// Returns how many were read (the caller counts them).
static inline uint32_t DrainErrorQueue(int fd) {
  char ctrl[512], data[64];
  uint32_t n = 0;
  for (int i = 0; i < 256; i++) {
    iovec iov{data, sizeof data};
    sockaddr_storage from;
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
    n++;
  }
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
  return n;
}

}  // namespace vpcgw
