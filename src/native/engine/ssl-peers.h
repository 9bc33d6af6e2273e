// The data-plane engine's SSL VPN peer table: native OpenVPN data-channel sessions (../core/ovpn.h)
// by peer-id, each with the socket and endpoint it talks on and the addresses it may use inside the
// tunnel. The engine looks sessions up per packet (Find: one hash probe; FindByEndpoint for the
// legacy P_DATA_V1 opcode, which has no peer-id); JS installs, updates and removes them between
// batches through the bindings (bindings.cc).
//
// A session removed or replaced while a batch runs may still be pointed at by that batch, so it is
// parked in a graveyard and freed when the batch ends (Release), never in the middle.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include <napi.h>

#include "../core/ovpn.h"
#include "../io/pktinfo.h"

namespace vpcgw {

// A native SSL VPN session: the data channel plus where it talks to and what it may send in.
struct SslPeer {
  std::unique_ptr<ovpn::Session> s;
  int bind = -1;
  sockaddr_storage to{};
  socklen_t toLen = 0;
  LocalAddr src;  // on a wildcard socket: the address the client reaches us on (else family 0)
  bool hasVaddr = false;
  uint8_t vaddr[4] = {0};        // the client's virtual IPv4 address (inner source check)
  uint8_t clientNet[4] = {0};    // the client pool: inner destinations inside go to JS (client-to-client)
  uint8_t clientLen = 0;
  uint8_t serverAddr[4] = {0};   // ...except the server's own tunnel address
  uint32_t origin = 0;           // what its decrypted packets carry into the policy stage (0: none)
  // multi-queue: per key slot, the SharedArrayBuffer view holding that key's shared packet-id cell
  // (ovpn::KeyConfig::pidCell), kept alive while the slot may use it
  Napi::ObjectReference pidRefs[2];
  // OpenVPN over TCP (Engine::SetSslTcp): the session's data packets are framed into tcpOut (2-byte
  // big-endian length, then the packet) and handed to JS once per batch instead of being sent
  bool tcp = false;
  bool tcpQueued = false;       // listed in the engine's pending-output list
  uint32_t tcpFrames = 0;       // frames in tcpOut[0, tcpLen)
  size_t tcpLen = 0;
  std::vector<uint8_t> tcpOut;  // grows to the largest batch once, then is reused
};

// Same address family, address and port (per packet: inline).
inline bool SameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
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

class SslPeerTable {
 public:
  SslPeer* Find(uint32_t peerId) const {
    auto it = peers_.find(peerId);
    return it == peers_.end() ? nullptr : it->second.get();
  }

  // The session talking on socket `bind` from exactly `from` (P_DATA_V1 carries no peer-id).
  SslPeer* FindByEndpoint(int bind, const sockaddr_storage& from) const {
    for (auto& kv : peers_)
      if (kv.second->bind == bind && SameEndpoint(kv.second->to, from)) return kv.second.get();
    return nullptr;
  }

  // Adds `p` under `peerId`, replacing (and retiring) a session with the same peer-id.
  void Install(uint32_t peerId, std::unique_ptr<SslPeer> p, bool inBatch);
  bool Remove(uint32_t peerId, bool inBatch);
  void Clear(bool inBatch);
  // Frees the sessions retired during the batch that just ended.
  void Release() { graveyard_.clear(); }

 private:
  void Retire(std::unique_ptr<SslPeer> p, bool inBatch) {
    if (inBatch) graveyard_.push_back(std::move(p));  // a batch may still point at it
  }

  std::unordered_map<uint32_t, std::unique_ptr<SslPeer>> peers_;
  std::vector<std::unique_ptr<SslPeer>> graveyard_;
};

}  // namespace vpcgw
