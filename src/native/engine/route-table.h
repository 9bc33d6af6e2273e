// The data-plane engine's route table: inner destination prefix -> where the packet goes (an
// outbound ESP SA by SPI, a JS sink, or an SSL VPN session by peer-id). Longest-prefix match with
// one hash table per prefix length, probed from the longest length present; a lookup costs one hash
// probe per distinct length in use (usually one or two), no allocation.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <vector>

namespace vpcgw {

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
}  // namespace vpcgw
