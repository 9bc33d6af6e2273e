// Native OpenVPN data channel (P_DATA_V2 AEAD, P_DATA_V1 receive): one client session with reused
// OpenSSL contexts per key slot, packet-ids, the 64-packet replay window with time backtrack, the
// compression stub framing, and recognition of ping and OCC payloads. No N-API and no I/O here:
// the data-plane engine (../engine/) drives it; the test addon's OvpnCore (../testing/ovpn-core.cc)
// exposes it alone for differential tests.
//
// Semantics mirror src/ssl/data (data-channel.ts, replay-window.ts, compression.ts, special.ts) and
// src/ssl/wire/data-packet.ts, so native and TypeScript sessions interoperate and are tested against
// each other (test/unit/dataplane/native-ovpn*.test.ts).
//
// P_DATA_V2 (OpenVPN 2.6 src/openvpn/ssl_pkt.h and crypto.c, AEAD mode):
//   | op<<3|kid (1) | peer-id (3) | packet-id (4) | tag (16) | ciphertext (>= 1) |
//   nonce = packet-id || implicit IV (8); AAD = bytes 0..7.
// P_DATA_V1 (the same without the peer-id): | op<<3|kid (1) | packet-id (4) | tag (16) | ciphertext |; AAD = packet-id.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>

namespace vpcgw {
namespace ovpn {

// --- spec constants
constexpr uint8_t kOpDataV1 = 6;
constexpr uint8_t kOpDataV2 = 9;
constexpr unsigned kOpShift = 3;
constexpr uint8_t kKeyIdMask = 7;
constexpr size_t kV1Header = 5;
constexpr size_t kV2Header = 8;
constexpr size_t kTag = 16;
constexpr size_t kV2Overhead = kV2Header + kTag;  // 24
constexpr size_t kImplicitIv = 8;
constexpr size_t kMagic = 16;
constexpr uint32_t kPacketIdMax = 0xffffffffu;
constexpr uint32_t kPacketIdReneg = 0xff000000u;  // OpenVPN renegotiates before the wrap
constexpr uint32_t kPeerIdUnset = 0xffffff;
constexpr uint8_t kOccExit = 6;

// Cipher ids (ours; the TS side maps OpenVPN names to them).
enum Cipher : int { kAes128Gcm = 1, kAes256Gcm = 2, kChacha20Poly1305 = 3 };

// Compression stub modes: same values as COMP_* in src/ssl/data/compression.ts.
enum Comp : int { kCompNone = 0, kCompStubV2 = 1, kCompLzoStub = 2, kCompSwapStub = 3 };
constexpr size_t kCompMaxOverhead = 2;

// Decrypt results. 0..2 are deliveries, the rest are drop codes with the same values and names as
// DROP_* in data-channel.ts (kOcc: an OCC message of any opcode — the shell decides; the TS core
// splits it into DATA_OCC_EXIT / DROP_OCC_OTHER). 12.. are data-plane drops after decryption.
enum Result : int {
  kIp = 0,
  kPing = 1,
  kOcc = 2,
  kShort = 3,
  kNotData = 4,
  kNoKey = 5,
  kReplay = 6,
  kBadTag = 7,
  kCompressed = 8,
  kOccOther = 9,  // (unused natively; kept for name parity)
  kPacketIdExhausted = 10,
  kTooBig = 11,
  kNotIpv4 = 12,    // the inner packet is not IPv4 (we push no IPv6)
  kBadSource = 13,  // the inner source is not the client's virtual address
  kNoSession = 14,  // (data plane) no session for a route / peer-id
  kNoBind = 15,     // (data plane) the session's socket is gone
  kResultCount = 16
};

// OpenVPN `--replay-window 64 15` (packet_id.c): above the top, or within 64 below, unseen, and not
// late for longer than the time backtrack. Check before the tag, record after (as replay-window.ts).
class ReplayWindow {
 public:
  static constexpr uint32_t kSize = 64;
  explicit ReplayWindow(double backtrackMs = 15000) : backtrackMs_(backtrackMs) {}
  void Reset() {
    top_ = 0;
    for (uint32_t i = 0; i < kSize; i++) seen_[i] = 0, lateSince_[i] = 0;
  }
  bool Check(uint32_t id, double nowMs) const;
  void Record(uint32_t id, double nowMs);
  uint32_t top() const { return top_; }

 private:
  double backtrackMs_;
  uint32_t top_ = 0;
  uint8_t seen_[kSize] = {0};
  double lateSince_[kSize] = {0};
};

// Where a packet lies after Encrypt/Decrypt (offsets into the caller's buffer).
struct Span {
  size_t off = 0;
  size_t len = 0;
};

struct KeyConfig {
  int keyId = 0;
  int cipher = 0;
  const uint8_t* encKey = nullptr;  // leading bytes used (16 or 32)
  size_t encKeyLen = 0;
  const uint8_t* encIv = nullptr;  // 8 bytes
  const uint8_t* decKey = nullptr;
  size_t decKeyLen = 0;
  const uint8_t* decIv = nullptr;
  uint32_t initialSendPacketId = 0;
  // Several engines (multi-queue data plane) sending with one key share its packet-id through this
  // 8-aligned cell of shared memory (atomic add): never two packets with the same packet-id, hence
  // the same AEAD nonce, under one key. Null: the slot counts alone (sendPid).
  uint64_t* pidCell = nullptr;
};

struct Counters {
  double rxPackets = 0;  // authenticated packets in (IP, ping, OCC)
  double rxBytes = 0;    // plaintext IP bytes delivered
  double txPackets = 0;  // IP packets sent (pings not counted)
  double txBytes = 0;
  double pingsIn = 0;
  double pingsOut = 0;
  double drops[kResultCount] = {0};
};

// One client session's data channel. Not copyable; owns its OpenSSL contexts.
class Session {
 public:
  Session(uint32_t peerId, double replayBacktrackMs = 15000);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Installs a key state into a slot (the same key-id's slot, else the one not holding the send key);
  // it becomes the send key at once. Returns false (err set) on a bad cipher or key size.
  bool InstallKey(const KeyConfig& k, const char** err);
  // Forgets the key state with this key-id; retiring the send key stops sending.
  void RetireKey(int keyId);

  // Authenticates and decrypts buf[off, off+len) in place. Returns a Result; for kIp and kOcc the
  // payload (compression framing removed) is at span.
  int Decrypt(uint8_t* buf, size_t off, size_t len, double nowMs, Span* span);
  // Encrypts the payload at buf[off, off+len) in place as P_DATA_V2: the header and framing grow
  // backwards (needs off >= 26), the swap stub forward by one byte (needs off+len < limit). Returns
  // kIp on success (wire packet at span) or a drop code (counted). `ping`: counted as a ping.
  int Encrypt(uint8_t* buf, size_t off, size_t len, size_t limit, double nowMs, bool ping, Span* span);

  uint32_t peerId() const { return peerId_; }
  int compression() const { return comp_; }
  void setCompression(int c) { comp_ = (c >= kCompNone && c <= kCompSwapStub) ? c : kCompNone; }
  int sendKeyId() const { return send_ >= 0 ? slots_[send_].keyId : -1; }
  uint32_t sendPacketId() const;
  // The slot (0 or 1) holding the key state with this key-id, or -1.
  int SlotOf(int keyId) const {
    for (int i = 0; i < 2; i++)
      if (slots_[i].used && slots_[i].keyId == keyId) return i;
    return -1;
  }
  bool HasSendKey() const { return send_ >= 0; }
  int Drop(int r) {
    counters.drops[r] += 1;
    return r;
  }

  Counters counters;
  double lastRxMs = 0;
  double lastTxMs = 0;

 private:
  struct Slot {
    bool used = false;
    int keyId = 0;
    uint32_t sendPid = 0;
    uint64_t* pidCell = nullptr;  // KeyConfig::pidCell
    EVP_CIPHER_CTX* enc = nullptr;
    EVP_CIPHER_CTX* dec = nullptr;
    uint8_t encIv[kImplicitIv] = {0};
    uint8_t decIv[kImplicitIv] = {0};
    ReplayWindow replay;
  };
  void FreeSlot(Slot& s);
  // The next packet-id to send with slot s (the shared cell's when it has one); > kPacketIdMax: exhausted.
  uint64_t NextPid(Slot& s);
  int Unframe(uint8_t* buf, size_t off, size_t len, Span* span);

  uint32_t peerId_;
  double backtrackMs_;
  int comp_ = kCompNone;
  Slot slots_[2];
  int send_ = -1;  // slot index of the send key
};

bool IsPing(const uint8_t* p, size_t len);
// The OCC opcode of an OCC message at p, or -1.
int OccOpcode(const uint8_t* p, size_t len);

}  // namespace ovpn
}  // namespace vpcgw
