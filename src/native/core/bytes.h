// Big-endian (network order) loads and stores on unaligned byte pointers, shared by the native
// cores (esp.cc, offload.cc, ovpn.cc) and the data-plane engine (../engine/). No N-API here:
// test/fuzz links the cores standalone.
#pragma once

#include <cstdint>

namespace vpcgw {

static inline uint16_t Rd16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
static inline void Wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
static inline uint32_t Rd32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
static inline void Wr32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

}  // namespace vpcgw
