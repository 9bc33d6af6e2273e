// OpenVPN over TCP: the stream framing. Every packet on the stream is preceded by its length as a
// 16-bit big-endian number (the 2 bytes not counted), as OpenVPN's socket.c reads it into its
// stream_buf (stream_buf_added: a zero or over-long length is a fatal framing error there too).
//
//   +--------+--------+-------------------- ... -----+
//   | len (u16, BE)   | packet (len bytes)            |
//   +--------+--------+-------------------- ... -----+
//
// TcpDeframer is the incremental, bounds-checked parser the data-plane engine runs over each chunk
// a TCP session's socket delivered (the TypeScript twin is src/ssl/wire/tcp-framing.ts). State is
// explicit and carried between chunks: one byte of a split length, or a packet that crossed the
// chunk's end (copied into an assembly buffer no larger than the largest allowed packet). A packet
// wholly inside a chunk is returned in place (no copy). Work is linear in the bytes fed; memory is
// two assembly buffers of at most maxFrame bytes. No N-API and no I/O here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vpcgw {
namespace ovpn {

// --- wire ---
constexpr size_t kTcpLengthSize = 2;
constexpr size_t kTcpMaxFrame = 0xffff;

// Next() results
enum TcpNext : int {
  kTcpFrame = 0,     // a complete packet at *frame, *len
  kTcpNeedMore = 1,  // the chunk is consumed; any partial length or packet is kept for the next
  kTcpBadLength = 2  // a zero or over-long length: the stream is broken (every later call says so)
};

class TcpDeframer {
 public:
  explicit TcpDeframer(size_t maxFrame = kTcpMaxFrame) : max_(maxFrame == 0 || maxFrame > kTcpMaxFrame ? kTcpMaxFrame : maxFrame) {}

  // Parses chunk[*pos, n): returns the next packet (kTcpFrame; *pos moves past it) or kTcpNeedMore
  // (*pos == n) or kTcpBadLength (*pos just past the bad length). A returned packet points into
  // `chunk` (in place; the caller may modify it there) or, when it crossed chunks, into an assembly
  // buffer that stays valid until the next packet that crosses chunks completes: the caller may
  // keep one such packet pending across the rest of the chunk and one more call.
  int Next(uint8_t* chunk, size_t n, size_t* pos, uint8_t** frame, size_t* len);

  bool failed() const { return failed_; }
  // bytes of an incomplete packet held (its length bytes included), 0 between packets
  size_t pending() const { return (need_ > 0 ? kTcpLengthSize + have_ : 0) + (lenHi_ >= 0 ? 1 : 0); }
  double frames() const { return frames_; }
  double copiedFrames() const { return copied_; }
  double badLengths() const { return bad_; }

 private:
  size_t max_;
  int lenHi_ = -1;   // the first length byte when the length itself was split, else -1
  size_t need_ = 0;  // length of the packet being assembled (0: none)
  size_t have_ = 0;  // bytes of it assembled so far
  int cur_ = 0;      // which assembly buffer the next crossing packet goes to
  std::vector<uint8_t> asm_[2];
  bool failed_ = false;
  double frames_ = 0, copied_ = 0, bad_ = 0;
};

}  // namespace ovpn
}  // namespace vpcgw
