// See ssl-peers.h.
#include "ssl-peers.h"

namespace vpcgw {

void SslPeerTable::Install(uint32_t peerId, std::unique_ptr<SslPeer> p, bool inBatch) {
  auto it = peers_.find(peerId);
  if (it != peers_.end()) {
    Retire(std::move(it->second), inBatch);
    it->second = std::move(p);
  } else {
    peers_.emplace(peerId, std::move(p));
  }
}

bool SslPeerTable::Remove(uint32_t peerId, bool inBatch) {
  auto it = peers_.find(peerId);
  if (it == peers_.end()) return false;
  Retire(std::move(it->second), inBatch);
  peers_.erase(it);
  return true;
}

void SslPeerTable::Clear(bool inBatch) {
  for (auto& kv : peers_) Retire(std::move(kv.second), inBatch);
  peers_.clear();
}

}  // namespace vpcgw

