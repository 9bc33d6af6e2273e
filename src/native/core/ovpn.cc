// Native OpenVPN data channel; see ovpn.h. Every branch mirrors src/ssl/data/data-channel.ts.
//
// Inbound (Decrypt):
//   1. clear header (V2: op|kid, peer-id, packet-id; V1: op|kid, packet-id); short -> drop
//   2. key slot by key-id; replay check (no state change)
//   3. nonce = packet-id || implicit IV; AAD = header (V2) / packet-id (V1); open in place
//   4. record the packet-id; undo the compression stub; ping / OCC / IP
// Outbound (Encrypt): send key, next packet-id (never wraps; one atomic cell when several data-plane
// queues send with the key), framing and header written in place
// around the payload, seal in place with the reused context.
#include "ovpn.h"

#include <cstring>

#include "bytes.h"

namespace vpcgw {
namespace ovpn {
namespace {

const uint8_t kPingMagic[kMagic] = {0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb,
                                    0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48};
const uint8_t kOccMagic[kMagic] = {0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81,
                                   0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c};

// compression.ts
constexpr uint8_t kNoCompress = 0xfa;
constexpr uint8_t kNoCompressSwap = 0xfb;
constexpr uint8_t kLzoCompress = 0x66;
constexpr uint8_t kLz4Compress = 0x69;
constexpr uint8_t kAlgV2Indicator = 0x50;
constexpr uint8_t kAlgV2Uncompressed = 0x00;

const EVP_CIPHER* CipherOf(int c, size_t* keyLen) {
  switch (c) {
    case kAes128Gcm:
      *keyLen = 16;
      return EVP_aes_128_gcm();
    case kAes256Gcm:
      *keyLen = 32;
      return EVP_aes_256_gcm();
    case kChacha20Poly1305:
      *keyLen = 32;
      return EVP_chacha20_poly1305();
    default:
      return nullptr;
  }
}

EVP_CIPHER_CTX* NewCtx(const EVP_CIPHER* c, const uint8_t* key, int enc) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return nullptr;
  // both GCM and ChaCha20-Poly1305 default to a 12-byte nonce
  if (EVP_CipherInit_ex(ctx, c, nullptr, key, nullptr, enc) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

bool IsPing(const uint8_t* p, size_t len) { return len == kMagic && memcmp(p, kPingMagic, kMagic) == 0; }

int OccOpcode(const uint8_t* p, size_t len) {
  if (len < kMagic + 1 || memcmp(p, kOccMagic, kMagic) != 0) return -1;
  return p[kMagic];
}

// ------------------------------------------------------------------ replay window (replay-window.ts)

bool ReplayWindow::Check(uint32_t id, double nowMs) const {
  if (id == 0) return false;
  if (id > top_) return true;
  uint32_t diff = top_ - id;
  if (diff >= kSize) return false;
  uint32_t slot = id & (kSize - 1);
  if (seen_[slot]) return false;
  if (backtrackMs_ > 0 && nowMs - lateSince_[slot] > backtrackMs_) return false;
  return true;
}

void ReplayWindow::Record(uint32_t id, double nowMs) {
  const uint32_t mask = kSize - 1;
  if (id > top_) {
    uint32_t gap = id - top_;
    if (gap >= kSize) {
      for (uint32_t i = 0; i < kSize; i++) seen_[i] = 0, lateSince_[i] = nowMs;
    } else {
      for (uint64_t k = uint64_t(top_) + 1; k < id; k++) {
        seen_[k & mask] = 0;
        lateSince_[k & mask] = nowMs;
      }
    }
    top_ = id;
  }
  seen_[id & mask] = 1;
}

// ------------------------------------------------------------------ session

Session::Session(uint32_t peerId, double replayBacktrackMs) : peerId_(peerId), backtrackMs_(replayBacktrackMs) {}

Session::~Session() {
  for (Slot& s : slots_) FreeSlot(s);
}

void Session::FreeSlot(Slot& s) {
  if (s.enc) EVP_CIPHER_CTX_free(s.enc);  // cleanses the key schedule
  if (s.dec) EVP_CIPHER_CTX_free(s.dec);
  s.enc = s.dec = nullptr;
  s.pidCell = nullptr;
  s.used = false;
}

uint64_t Session::NextPid(Slot& s) {
  if (!s.pidCell) return s.sendPid >= kPacketIdMax ? uint64_t(kPacketIdMax) + 1 : ++s.sendPid;
  uint64_t v = __atomic_add_fetch(s.pidCell, 1, __ATOMIC_RELAXED);
  if (v <= kPacketIdMax) s.sendPid = uint32_t(v);
  return v;
}

uint32_t Session::sendPacketId() const {
  if (send_ < 0) return 0;
  const Slot& s = slots_[send_];
  if (!s.pidCell) return s.sendPid;
  uint64_t v = __atomic_load_n(s.pidCell, __ATOMIC_RELAXED);
  return v > kPacketIdMax ? kPacketIdMax : uint32_t(v);
}

bool Session::InstallKey(const KeyConfig& k, const char** err) {
  if (k.keyId < 0 || k.keyId > int(kKeyIdMask)) {
    *err = "key-id out of range";
    return false;
  }
  size_t keyLen = 0;
  const EVP_CIPHER* c = CipherOf(k.cipher, &keyLen);
  if (!c) {
    *err = "unsupported data cipher";
    return false;
  }
  if (k.encKeyLen < keyLen || k.decKeyLen < keyLen || !k.encIv || !k.decIv) {
    *err = "key or implicit IV too short";
    return false;
  }
  EVP_CIPHER_CTX* enc = NewCtx(c, k.encKey, 1);
  EVP_CIPHER_CTX* dec = enc ? NewCtx(c, k.decKey, 0) : nullptr;
  if (!enc || !dec) {
    if (enc) EVP_CIPHER_CTX_free(enc);
    *err = "cipher context setup failed";
    return false;
  }
  // the same key-id's slot; else the slot that does not hold the send key (the lame duck goes)
  int idx = -1;
  for (int i = 0; i < 2; i++)
    if (slots_[i].used && slots_[i].keyId == k.keyId) idx = i;
  if (idx < 0) idx = send_ == 0 ? 1 : 0;
  Slot& s = slots_[idx];
  FreeSlot(s);
  s.used = true;
  s.keyId = k.keyId;
  s.sendPid = k.initialSendPacketId;
  s.pidCell = k.pidCell;
  s.enc = enc;
  s.dec = dec;
  memcpy(s.encIv, k.encIv, kImplicitIv);
  memcpy(s.decIv, k.decIv, kImplicitIv);
  s.replay = ReplayWindow(backtrackMs_);
  send_ = idx;
  return true;
}

void Session::RetireKey(int keyId) {
  for (int i = 0; i < 2; i++) {
    if (!slots_[i].used || slots_[i].keyId != (keyId & int(kKeyIdMask))) continue;
    FreeSlot(slots_[i]);
    if (send_ == i) send_ = -1;
  }
}

// compression.ts Unframer.unframe: 0 = ok (payload at span), otherwise a drop.
int Session::Unframe(uint8_t* buf, size_t off, size_t len, Span* span) {
  if (len == 0) return kCompressed;
  uint8_t b0 = buf[off];
  if (b0 == kNoCompress) {
    if (comp_ == kCompNone) comp_ = kCompLzoStub;  // learned: a client that frames (a compression stub such as `comp-lzo no`) expects framed packets back
    if (len < 2) return kCompressed;
    span->off = off + 1;
    span->len = len - 1;
    return 0;
  }
  if (b0 == kNoCompressSwap) {
    if (comp_ == kCompNone) comp_ = kCompSwapStub;
    if (len < 2) return kCompressed;
    buf[off] = buf[off + len - 1];  // the sender moved byte 0 to the end
    span->off = off;
    span->len = len - 1;
    return 0;
  }
  if (b0 == kAlgV2Indicator) {
    if (len < 3 || buf[off + 1] != kAlgV2Uncompressed) return kCompressed;
    span->off = off + 2;
    span->len = len - 2;
    return 0;
  }
  if ((b0 == kLzoCompress || b0 == kLz4Compress) && (comp_ == kCompLzoStub || comp_ == kCompSwapStub)) return kCompressed;
  span->off = off;
  span->len = len;
  return 0;
}

int Session::Decrypt(uint8_t* buf, size_t off, size_t len, double nowMs, Span* span) {
  if (len < 1) return Drop(kShort);
  uint8_t b0 = buf[off];
  uint8_t op = b0 >> kOpShift;
  size_t hdr;
  uint32_t pid;
  if (op == kOpDataV2) {
    hdr = kV2Header;
    if (len < hdr + kTag + 1) return Drop(kShort);
    pid = Rd32(buf + off + 4);
  } else if (op == kOpDataV1) {
    hdr = kV1Header;
    if (len < hdr + kTag + 1) return Drop(kShort);
    pid = Rd32(buf + off + 1);
  } else {
    return Drop(kNotData);
  }
  int kid = b0 & kKeyIdMask;
  Slot* s = nullptr;
  for (Slot& x : slots_)
    if (x.used && x.keyId == kid) s = &x;
  if (!s) return Drop(kNoKey);
  if (!s->replay.Check(pid, nowMs)) return Drop(kReplay);
  uint8_t nonce[12];
  Wr32(nonce, pid);
  memcpy(nonce + 4, s->decIv, kImplicitIv);
  const uint8_t* aad = op == kOpDataV2 ? buf + off : buf + off + 1;
  int aadLen = op == kOpDataV2 ? int(kV2Header) : 4;
  uint8_t* tag = buf + off + hdr;
  uint8_t* data = tag + kTag;
  size_t dataLen = len - hdr - kTag;
  int n = 0, m = 0;
  EVP_CIPHER_CTX* c = s->dec;
  if (EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) != 1 || EVP_DecryptUpdate(c, nullptr, &n, aad, aadLen) != 1 ||
      EVP_DecryptUpdate(c, data, &n, data, int(dataLen)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, int(kTag), tag) != 1 || EVP_DecryptFinal_ex(c, data + n, &m) != 1) {
    return Drop(kBadTag);
  }
  s->replay.Record(pid, nowMs);
  lastRxMs = nowMs;
  counters.rxPackets += 1;
  size_t dataOff = size_t(data - buf);
  if (Unframe(buf, dataOff, dataLen, span) != 0) return Drop(kCompressed);
  const uint8_t* p = buf + span->off;
  if (IsPing(p, span->len)) {
    counters.pingsIn += 1;
    return kPing;
  }
  if (OccOpcode(p, span->len) >= 0) return kOcc;
  counters.rxBytes += double(span->len);
  return kIp;
}

int Session::Encrypt(uint8_t* buf, size_t off, size_t len, size_t limit, double nowMs, bool ping, Span* span) {
  if (send_ < 0) return Drop(kNoKey);
  Slot& s = slots_[send_];
  if (!s.pidCell && s.sendPid >= kPacketIdMax) return Drop(kPacketIdExhausted);
  if (len == 0 || off < kV2Overhead + kCompMaxOverhead || off + len + 1 > limit) return Drop(kTooBig);
  // compression stub framing, in place (compression.ts writeFramed)
  size_t dataOff = off, dataLen = len;
  uint8_t b0 = buf[off];
  if (comp_ == kCompLzoStub) {
    buf[--dataOff] = kNoCompress;
    dataLen++;
  } else if (comp_ == kCompSwapStub) {
    buf[off + len] = b0;
    buf[off] = kNoCompressSwap;
    dataLen++;
  } else if (comp_ == kCompStubV2 && b0 == kAlgV2Indicator) {
    dataOff -= 2;
    buf[dataOff] = kAlgV2Indicator;
    buf[dataOff + 1] = kAlgV2Uncompressed;
    dataLen += 2;
  }
  // taken after the checks above, so a dropped packet never uses up a shared packet-id
  uint64_t next = NextPid(s);
  if (next > kPacketIdMax) {
    if (comp_ == kCompSwapStub) buf[off] = b0;  // leave the payload as it was
    return Drop(kPacketIdExhausted);
  }
  uint32_t pid = uint32_t(next);
  uint8_t* h = buf + dataOff - kV2Overhead;
  h[0] = uint8_t((kOpDataV2 << kOpShift) | (s.keyId & kKeyIdMask));
  h[1] = uint8_t(peerId_ >> 16);
  h[2] = uint8_t(peerId_ >> 8);
  h[3] = uint8_t(peerId_);
  Wr32(h + 4, pid);
  uint8_t nonce[12];
  Wr32(nonce, pid);
  memcpy(nonce + 4, s.encIv, kImplicitIv);
  int n = 0, m = 0;
  uint8_t* data = buf + dataOff;
  EVP_CIPHER_CTX* c = s.enc;
  if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) != 1 || EVP_EncryptUpdate(c, nullptr, &n, h, int(kV2Header)) != 1 ||
      EVP_EncryptUpdate(c, data, &n, data, int(dataLen)) != 1 || EVP_EncryptFinal_ex(c, data + n, &m) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, int(kTag), h + kV2Header) != 1) {
    return Drop(kTooBig);  // cannot happen with a valid context; never send a half-sealed packet
  }
  lastTxMs = nowMs;
  if (ping) {
    counters.pingsOut += 1;
  } else {
    counters.txPackets += 1;
    counters.txBytes += double(len);
  }
  span->off = dataOff - kV2Overhead;
  span->len = kV2Overhead + dataLen;
  return kIp;
}

}  // namespace ovpn
}  // namespace vpcgw
