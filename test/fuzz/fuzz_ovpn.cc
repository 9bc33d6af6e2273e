// libFuzzer harness around the native OpenVPN data channel (src/native/core/ovpn.cc):
//   mode 0 — any bytes as a data packet into Session::Decrypt, for each cipher and stub mode;
//   mode 1 — any bytes as the *plaintext* of a correctly sealed P_DATA_V2 packet (a sender session
//            with the mirrored keys), so the stub unframing and ping / OCC recognition see hostile data;
//   mode 2 — any bytes as a payload into Session::Encrypt at the tightest offsets and limits the
//            framing allows, then decrypted back (must round-trip).
// Built with -fsanitize=fuzzer,address,undefined by test/fuzz/run-ovpn.sh.
//
// Input: byte 0 = mode (bits 6-7) | compression (bits 3-4) | cipher (bits 0-1, 1..3); the rest is
// the payload.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace vpcgw;

namespace {

fuzz::OvpnKeys gKeys;

ovpn::Session* Make(int cipher, bool server) { return fuzz::MakeOvpnSession(gKeys, 0x123456, cipher, server); }

// [cipher 1..3] -> server (receiver) and client (sender) sessions, kept across runs (replay state too)
ovpn::Session* gServer[4];
ovpn::Session* gClient[4];
double gNow = 1000;

void Init() {
  static bool done = false;
  if (done) return;
  done = true;
  gKeys.Fill();
  for (int c = 1; c <= 3; c++) {
    gServer[c] = Make(c, true);
    gClient[c] = Make(c, false);
  }
}

constexpr size_t kHead = 64;
constexpr size_t kSlot = 2 * 4096 + 2 * kHead;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Init();
  if (size < 1) return 0;
  int mode = data[0] >> 6;
  int comp = (data[0] >> 3) & 3;
  int cipher = (data[0] & 3) == 0 ? 1 : (data[0] & 3);
  const uint8_t* p = data + 1;
  size_t n = size - 1;
  if (n > 4096) return 0;
  gNow += 1;
  std::vector<uint8_t> buf(kSlot);
  ovpn::Session* srv = gServer[cipher];
  ovpn::Session* cli = gClient[cipher];
  srv->setCompression(comp);
  cli->setCompression(comp);
  ovpn::Span span;
  if (mode == 0) {
    memcpy(buf.data() + kHead, p, n);
    int r = srv->Decrypt(buf.data(), kHead, n, gNow, &span);
    if ((r == ovpn::kIp || r == ovpn::kOcc) && (span.off < kHead || span.off + span.len > kHead + n)) __builtin_trap();
    return 0;
  }
  if (mode == 1) {
    if (n == 0) return 0;
    // seal the hostile plaintext without framing (the sender's mode is none), open it with framing
    cli->setCompression(ovpn::kCompNone);
    memcpy(buf.data() + kHead, p, n);
    if (cli->Encrypt(buf.data(), kHead, n, kSlot, gNow, false, &span) != ovpn::kIp) return 0;
    int r = srv->Decrypt(buf.data(), span.off, span.len, gNow, &span);
    if (r == ovpn::kBadTag || r == ovpn::kShort) __builtin_trap();  // sealed correctly: must open
    return 0;
  }
  // mode 2/3: tightest in-place framing: header + stub room before, one byte after
  if (n == 0) return 0;
  size_t off = ovpn::kV2Overhead + ovpn::kCompMaxOverhead;
  std::vector<uint8_t> tight(off + n + 1);
  memcpy(tight.data() + off, p, n);
  int r = srv->Encrypt(tight.data(), off, n, tight.size(), gNow, false, &span);
  if (r != ovpn::kIp) return 0;
  if (span.off + span.len > tight.size()) __builtin_trap();
  cli->setCompression(comp);
  int d = cli->Decrypt(tight.data(), span.off, span.len, gNow, &span);
  if (d == ovpn::kBadTag || d == ovpn::kShort || d == ovpn::kReplay || d == ovpn::kNoKey) __builtin_trap();
  // with lzo / swap framing every payload round-trips exactly (none / stub-v2 leave 0xFA/0xFB/0x50
  // first bytes ambiguous, as in OpenVPN: IP packets never start with them)
  bool exact = comp == ovpn::kCompLzoStub || comp == ovpn::kCompSwapStub;
  if (exact && d == ovpn::kIp && (span.len != n || memcmp(tight.data() + span.off, p, n) != 0)) __builtin_trap();
  if (exact && d == ovpn::kCompressed) __builtin_trap();
  return 0;
}
