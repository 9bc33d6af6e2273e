// Native ESP core: one direction of an ESP SA with a reused OpenSSL context, in-place tunnel-mode
// encapsulation/decapsulation (RFC 4303), RFC 6479 replay window, selectors, counters, lifetimes.
// No N-API and no I/O here: the data-plane engine (../engine/) drives it, test/fuzz links it
// standalone.
//
// Semantics mirror src/esp (encap.ts, decap.ts, esp-sa.ts, replay-window.ts, spd.ts) so the two
// backends are interchangeable and differential-tested against each other.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vpcgw {
namespace esp {

// Drop reasons: same values and names as src/esp/drop-reason.ts.
enum Drop : int {
  kNone = 0,
  kShort = 1,
  kNoSa = 2,
  kReplay = 3,
  kIcv = 4,
  kBadPad = 5,
  kBadInner = 6,
  kPolicy = 7,
  kSeqExhausted = 8,
  kNoRoute = 9,
  kExpired = 10,
  kMalformed = 11,
  kNoRoom = 12,
  kDummy = 13,
  kNoBind = 14,
  kDropCount = 15
};

// Event bits (same as SA_EVENT_* in esp-sa.ts); each fires once per SA.
constexpr int kEventSoft = 1;
constexpr int kEventHard = 2;
constexpr int kEventSeqExhausted = 4;
// Not from the SA itself: the engine reports an authenticated packet from another outer
// address:port than the SA's peer (a NAT mapping changed), once per move.
constexpr int kEventPeerMoved = 8;

// RFC 4303 §2
constexpr size_t kHeaderSize = 8;
constexpr size_t kSeqOffset = 4;
constexpr size_t kTrailerFixed = 2;  // pad length + next header
constexpr uint8_t kNextHeaderIpv4 = 4;
constexpr uint8_t kNextHeaderIpv6 = 41;
constexpr uint8_t kNextHeaderNone = 59;
// RFC 4303 §3.3.3: without ESN the last usable sequence number is 2^32 - 1; with ESN (§2.2.1)
// 2^64 - 1. The counter never cycles: the SA must be rekeyed.
constexpr uint32_t kSeqMax = 0xffffffffu;
constexpr uint64_t kSeqMaxEsn = ~uint64_t(0);
// Largest header + IV (CBC) and trailer + ICV (15 pad + 2 + 32) a packet can need.
constexpr size_t kMaxHeadroom = kHeaderSize + 16;
constexpr size_t kMaxTailroom = 15 + kTrailerFixed + 32;

// IKEv2 transform ids (IANA), as in src/crypto/aead.ts.
constexpr int kEncrAesCbc = 12;
constexpr int kEncrAesGcm8 = 18;
constexpr int kEncrAesGcm12 = 19;
constexpr int kEncrAesGcm16 = 20;
constexpr int kEncrChacha20Poly1305 = 28;
constexpr int kAuthNone = 0;
constexpr int kAuthHmacSha1_96 = 2;
constexpr int kAuthHmacSha256_128 = 12;
constexpr int kAuthHmacSha384_192 = 13;
constexpr int kAuthHmacSha512_256 = 14;

// An address prefix (traffic selector); family 4 or 6, bytes in network order, host bits zero.
struct Prefix {
  uint8_t family = 0;
  uint8_t len = 0;
  uint8_t bytes[16] = {0};
};

// True when the addrLen-byte address at a lies inside p (p.family must match addrLen).
bool PrefixContains(const Prefix& p, const uint8_t* a, size_t addrLen);

// Validates an IP header inside [p, p+len): returns the length the header claims (IPv4 total
// length, IPv6 40 + payload length) or -1 when malformed or longer than len.
long InnerIpLength(const uint8_t* p, size_t len);

// RFC 6479 ring bitmap anti-replay window over 64-bit sequence numbers (without ESN the high half
// is always 0). The ring has a power-of-two number of words, so a number's bit depends on its low
// 32 bits alone and stays put when the sender crosses a 2^32 boundary.
class ReplayWindow {
 public:
  bool Init(uint32_t size);
  // RFC 4303 Appendix A2.2: the high 32 bits of the number whose low 32 bits arrived, relative to
  // the window (Case A: window inside one 2^32 subspace; Case B: straddling a boundary); -1 when
  // that would be before the first or past the last subspace. Appendix A3 resync is not done.
  int64_t InferHi(uint32_t lo) const;
  // True when seq is new and inside the window; changes nothing (RFC 4303 §3.4.3: before the ICV).
  bool Check(uint64_t seq) const;
  // Records seq after the ICV verified; false (no change) when it does not pass Check.
  bool Accept(uint64_t seq);
  uint64_t top() const { return top_; }

 private:
  uint32_t size_ = 0;
  uint64_t top_ = 0;
  uint32_t mask_ = 0;
  std::vector<uint32_t> ring_;
};

struct SaConfig {
  bool inbound = false;
  uint32_t spi = 0;
  int encr = 0;
  int encrKeyBits = 0;
  int integ = 0;
  const uint8_t* encrKey = nullptr;  // AEAD: key | 4-byte salt
  size_t encrKeyLen = 0;
  const uint8_t* integKey = nullptr;
  size_t integKeyLen = 0;
  uint32_t replayWindow = 1024;
  bool esn = false;          // RFC 4303 §2.2.1 extended (64-bit) sequence numbers
  uint32_t initialSeq = 0;   // outbound: last sequence number used (low 32 bits with ESN)
  uint32_t initialSeqHi = 0; // outbound with ESN: its high 32 bits
  std::vector<Prefix> localTs;
  std::vector<Prefix> remoteTs;
  double softBytes = 0, hardBytes = 0, softPackets = 0, hardPackets = 0;
};

// Where a packet lies after encap/decap, plus the SA event bits this packet crossed.
struct Span {
  size_t off = 0;
  size_t len = 0;
  int event = 0;
};

// One direction of an ESP SA. Not copyable; owns its OpenSSL contexts.
class Sa {
 public:
  // Returns nullptr and sets *err (a static string) on an unsupported transform or bad key size.
  static Sa* Create(const SaConfig& c, const char** err);
  ~Sa();
  Sa(const Sa&) = delete;
  Sa& operator=(const Sa&) = delete;

  // Encapsulates the inner packet at buf[off, off+len) in place; the ESP packet may grow back to
  // buf[0] (header + IV) and forward to buf[limit) (trailer + ICV). Returns a Drop (kNone = ok).
  int Encap(uint8_t* buf, size_t off, size_t len, size_t limit, Span* span);
  // Decapsulates the ESP packet at buf[off, off+len) in place (inner packet into span).
  int Decap(uint8_t* buf, size_t off, size_t len, Span* span);

  // Per-packet overhead for an inner packet of len bytes (header, IV, padding, trailer, ICV).
  size_t Overhead(size_t len) const;

  bool inbound() const { return inbound_; }
  uint32_t spi() const { return spi_; }
  size_t ivLen() const { return ivLen_; }
  size_t icvLen() const { return icvLen_; }
  size_t blockLen() const { return blockLen_; }
  bool esn() const { return esn_; }
  // outbound: last sequence number used; inbound: highest authenticated one (64-bit with ESN)
  uint64_t seq() const {
    if (inbound_) return replay_.top();
    if (!seqCell) return seq_;
    uint64_t s = __atomic_load_n(seqCell, __ATOMIC_RELAXED);
    return !esn_ && s > kSeqMax ? kSeqMax : s;
  }

  double bytes = 0;
  double packets = 0;
  double drops[kDropCount] = {0};
  bool softReached = false;
  bool hardReached = false;
  bool seqExhausted = false;

  // Outbound SA installed on several queues (threads): the last sequence number used lives in this
  // shared 8-byte cell (SharedArrayBuffer memory, kept alive by the data plane) and every packet
  // takes the next one with an atomic add, so no number is ever sent twice under one key (RFC 4303
  // §3.3.3; with AES-GCM a repeated seq would also repeat the nonce, RFC 4106 §3.1). nullptr: seq_.
  // With ESN the cell holds the whole 64-bit number and is advanced by compare-and-swap, so it
  // stops at 2^64 - 1 instead of wrapping to numbers already used.
  uint64_t* seqCell = nullptr;

  // Set by the data plane (outer endpoint): which UDP bind sends, and where to.
  int bindIndex = -1;
  uint8_t remoteFamily = 0;
  uint8_t remoteAddr[16] = {0};
  uint16_t remotePort = 0;

  // Policy: inbound src in remoteTs and dst in localTs; outbound src in localTs, dst in remoteTs.
  bool PolicyAllows(const uint8_t* ip, bool inbound) const;

 private:
  Sa() = default;
  int Drop(int r) {
    drops[r] += 1;
    return r;
  }
  int Count(size_t n);
  void SeqExhaustedEvent(Span* span) {
    if (!seqExhausted) {
      seqExhausted = true;
      span->event = kEventSeqExhausted;
    }
  }
  int SeqExhausted(Span* span) {
    SeqExhaustedEvent(span);
    return Drop(kSeqExhausted);
  }
  // With ESN, seqHi is the high half of the sequence number: authenticated, never sent (RFC 4303
  // §2.2.1). AEAD: AAD = SPI | seq-hi | seq-lo (RFC 4106 §5, RFC 7634 §2.1); CBC + HMAC: seq-hi is
  // appended to the MAC input after the ciphertext.
  bool Seal(uint8_t* buf, size_t hdrOff, size_t ivOff, size_t dataOff, size_t dataLen, uint32_t seqHi);
  bool Open(uint8_t* buf, size_t hdrOff, size_t ivOff, size_t dataOff, size_t dataLen, uint32_t seqHi);
  bool Mac(const uint8_t* p, size_t n, uint32_t seqHi, uint8_t* out);
  bool Aad(const uint8_t* hdr, size_t n, uint32_t seqHi);
  uint64_t NextSeqShared(Span* span, bool* ok);

  bool inbound_ = false;
  uint32_t spi_ = 0;
  bool aead_ = false;
  size_t ivLen_ = 0, icvLen_ = 0, blockLen_ = 4;
  uint8_t salt_[4] = {0};
  EVP_CIPHER_CTX* cipher_ = nullptr;
  EVP_MAC_CTX* mac_ = nullptr;
  bool esn_ = false;
  uint64_t seq_ = 0;
  ReplayWindow replay_;
  double softBytes_ = 0, hardBytes_ = 0, softPackets_ = 0, hardPackets_ = 0;
  std::vector<Prefix> localTs_;
  std::vector<Prefix> remoteTs_;
};

}  // namespace esp
}  // namespace vpcgw
