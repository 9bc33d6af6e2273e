// libFuzzer harness around the OpenVPN TCP stream framing parser (src/native/core/ovpn-tcp.cc),
// checked against a whole-stream model: the same bytes, cut into chunks at fuzzer-chosen places,
// must give exactly the packets (and the same broken point) that parsing the stream in one piece
// by the definition gives (a u16 big-endian length, then that many bytes; 0 or above the maximum
// breaks the stream). Packets returned from the assembly buffer must stay intact while the caller
// holds them to the end of the chunk (the engine queues them for the TUN until then), and work
// must be linear in the input. Built with -fsanitize=fuzzer,address,undefined by
// test/fuzz/run-ovpn-tcp.sh.
//
// Input: byte 0 = the maximum packet length (byte * 16 + 1, or 65535 for 0xff); bytes 1..k: chunk
// sizes (until a zero byte; each taken modulo the rest, 0 meaning "the rest"); then the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../src/native/core/ovpn-tcp.h"

using namespace vpcgw;

namespace {

struct Frame {
  size_t off;  // in the stream
  size_t len;
};

// The definition, over the whole stream: packets, and whether (where) the stream broke.
void Model(const uint8_t* s, size_t n, size_t maxFrame, std::vector<Frame>* out, bool* broken) {
  size_t i = 0;
  *broken = false;
  while (n - i >= 2) {
    size_t l = (size_t(s[i]) << 8) | s[i + 1];
    if (l == 0 || l > maxFrame) {
      *broken = true;
      return;
    }
    if (n - i - 2 < l) return;
    out->push_back({i + 2, l});
    i += 2 + l;
  }
}

void Fail() { abort(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t maxFrame = data[0] == 0xff ? ovpn::kTcpMaxFrame : size_t(data[0]) * 16 + 1;
  size_t p = 1;
  std::vector<size_t> cuts;
  while (p < size && data[p] != 0 && cuts.size() < 64) cuts.push_back(data[p++]);
  if (p < size) p++;  // the zero byte
  const uint8_t* stream = data + p;
  size_t n = size - p;

  std::vector<Frame> want;
  bool wantBroken = false;
  Model(stream, n, maxFrame, &want, &wantBroken);

  ovpn::TcpDeframer d(maxFrame);
  size_t got = 0, at = 0, ci = 0, calls = 0;
  bool broken = false;
  while (at < n && !broken) {
    size_t len = n - at;
    if (ci < cuts.size()) {
      size_t c = cuts[ci++] % (len + 1);
      if (c > 0) len = c;
    }
    // a private copy of the chunk, as the socket hands the engine a fresh buffer per read
    std::vector<uint8_t> chunk(stream + at, stream + at + len);
    size_t pos = 0;
    const uint8_t* held = nullptr;  // a packet from the assembly buffer, held to the chunk's end
    size_t heldLen = 0, heldIdx = 0;
    for (;;) {
      if (++calls > 4 * size + 16) Fail();  // linear work
      uint8_t* f;
      size_t fl;
      int r = d.Next(chunk.data(), chunk.size(), &pos, &f, &fl);
      if (r == ovpn::kTcpNeedMore) {
        if (pos != chunk.size()) Fail();
        break;
      }
      if (r == ovpn::kTcpBadLength) {
        broken = true;
        break;
      }
      if (got >= want.size() || fl != want[got].len || memcmp(f, stream + want[got].off, fl) != 0) Fail();
      bool inChunk = f >= chunk.data() && f < chunk.data() + chunk.size();
      if (!inChunk) {
        if (held) Fail();  // at most one packet per chunk crosses into it
        held = f;
        heldLen = fl;
        heldIdx = got;
      }
      got++;
    }
    if (held && memcmp(held, stream + want[heldIdx].off, heldLen) != 0) Fail();
    at += len;
  }
  if (broken != wantBroken || got != want.size()) Fail();
  if (!broken && d.pending() != n - (want.empty() ? 0 : want.back().off + want.back().len)) Fail();
  return 0;
}
