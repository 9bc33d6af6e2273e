// See ovpn-tcp.h.
#include "ovpn-tcp.h"

#include <cstring>

namespace vpcgw {
namespace ovpn {

int TcpDeframer::Next(uint8_t* chunk, size_t n, size_t* pos, uint8_t** frame, size_t* len) {
  if (failed_) return kTcpBadLength;
  size_t i = *pos;
  while (i < n) {
    if (need_ > 0) {
      // a packet that crossed the previous chunk's end: copy what this chunk has of it
      std::vector<uint8_t>& a = asm_[cur_];
      size_t take = need_ - have_;
      if (take > n - i) take = n - i;
      memcpy(a.data() + have_, chunk + i, take);
      have_ += take;
      i += take;
      if (have_ < need_) break;  // i == n
      *frame = a.data();
      *len = need_;
      need_ = 0;
      have_ = 0;
      cur_ ^= 1;  // the next crossing packet must not overwrite this one while the caller holds it
      frames_ += 1;
      copied_ += 1;
      *pos = i;
      return kTcpFrame;
    }
    size_t l;
    if (lenHi_ >= 0) {
      l = (size_t(lenHi_) << 8) | chunk[i];
      lenHi_ = -1;
      i += 1;
    } else if (n - i >= kTcpLengthSize) {
      l = (size_t(chunk[i]) << 8) | chunk[i + 1];
      i += kTcpLengthSize;
    } else {
      lenHi_ = chunk[i];
      i += 1;
      break;
    }
    if (l == 0 || l > max_) {
      failed_ = true;
      bad_ += 1;
      *pos = i;
      return kTcpBadLength;
    }
    if (n - i >= l) {
      *frame = chunk + i;
      *len = l;
      frames_ += 1;
      *pos = i + l;
      return kTcpFrame;
    }
    std::vector<uint8_t>& a = asm_[cur_];
    if (a.size() < l) a.resize(l);
    need_ = l;
    have_ = 0;
  }
  *pos = n;
  return kTcpNeedMore;
}

}  // namespace ovpn
}  // namespace vpcgw
