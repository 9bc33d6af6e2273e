// Native ESP core (see esp.h). OpenSSL comes from Node's own headers and symbols (no -lcrypto);
// the fuzz harness links the same file against the system libcrypto.
//
// Outbound (Encap), one packet, in place:
//   1. refuse when past the hard lifetime or out of sequence numbers (2^32 - 1, with ESN 2^64 - 1:
//      rekey);
//   2. next header from the inner version nibble (4 -> 4, 6 -> 41);
//   3. padding 1, 2, 3, ... to the block length (libipsec rejects other padding);
//   4. SPI | Seq (low 32 bits) | IV into the headroom: AEAD IV = the 64-bit sequence number
//      (seq-hi | seq-lo; 0 | seq without ESN: RFC 4106 §3.1, unique per key because seq never
//      repeats), CBC IV = CSPRNG bytes (RFC 3602 §2.4);
//   5. seal with the SA's reused EVP context (AAD = SPI | Seq, with ESN SPI | seq-hi | seq-lo;
//      CBC: encrypt-then-MAC from the SPI, with ESN seq-hi appended to the MAC input).
// Inbound (Decap):
//   1. length sanity; 2. with ESN infer seq-hi (RFC 4303 Appendix A2.2), then replay Check on the
//   64-bit number (no state change, RFC 4303 §3.4.3 before the ICV); 3. ICV (over seq-hi too) +
//   decrypt; 4. replay Accept; 5. pad bytes 1, 2, 3, ...; 6. next header 4/41 with a well-formed
//   inner header (59: dummy); 7. policy; 8. count; span = inner packet trimmed to IP length.
#include "esp.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>

#include "bytes.h"

namespace vpcgw {
namespace esp {
namespace {

constexpr size_t kAeadSaltSize = 4;
constexpr size_t kAeadIvSize = 8;
constexpr size_t kCbcIvSize = 16;
constexpr size_t kAesBlock = 16;
constexpr size_t kEspMinAlign = 4;
constexpr size_t kMaxMac = 64;

// Implementation choice: CBC IVs come from a pool of CSPRNG bytes refilled 4 KiB at a time.
constexpr size_t kIvPoolSize = 4096;
thread_local uint8_t ivPool[kIvPoolSize];
thread_local size_t ivPoolPos = kIvPoolSize;

bool RandomIv(uint8_t* out, size_t n) {
  if (ivPoolPos + n > kIvPoolSize) {
    if (RAND_bytes(ivPool, kIvPoolSize) != 1) return false;
    ivPoolPos = 0;
  }
  memcpy(out, ivPool + ivPoolPos, n);
  ivPoolPos += n;
  return true;
}

struct IntegInfo {
  int id;
  const char* digest;
  size_t keyLen;
  size_t icvLen;
};

// RFC 2404 (SHA1-96), RFC 4868 §2.1 (SHA2: key = hash output size, ICV = left half)
const IntegInfo kInteg[] = {
    {kAuthHmacSha1_96, "SHA1", 20, 12},
    {kAuthHmacSha256_128, "SHA256", 32, 16},
    {kAuthHmacSha384_192, "SHA384", 48, 24},
    {kAuthHmacSha512_256, "SHA512", 64, 32},
};

const IntegInfo* FindInteg(int id) {
  for (const IntegInfo& i : kInteg)
    if (i.id == id) return &i;
  return nullptr;
}

EVP_MAC* HmacAlgo() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

}  // namespace

bool PrefixContains(const Prefix& p, const uint8_t* a, size_t addrLen) {
  if ((p.family == 4 ? 4u : 16u) != addrLen) return false;
  size_t full = p.len >> 3;
  if (memcmp(p.bytes, a, full) != 0) return false;
  unsigned rem = p.len & 7;
  if (rem == 0) return true;
  uint8_t m = uint8_t(0xff << (8 - rem));
  return (a[full] & m) == p.bytes[full];
}

long InnerIpLength(const uint8_t* p, size_t len) {
  if (len < 1) return -1;
  unsigned v = p[0] >> 4;
  if (v == 4) {
    if (len < 20) return -1;
    size_t ihl = size_t(p[0] & 0x0f) * 4;
    size_t total = (size_t(p[2]) << 8) | p[3];
    if (ihl < 20 || total < ihl || total > len) return -1;
    return long(total);
  }
  if (v == 6) {
    if (len < 40) return -1;
    size_t total = 40 + ((size_t(p[4]) << 8) | p[5]);
    if (total > len) return -1;
    return long(total);
  }
  return -1;
}

// ------------------------------------------------------------------------------ replay window

bool ReplayWindow::Init(uint32_t size) {
  if (size < 32 || size % 32 != 0 || size > (1u << 20)) return false;
  size_ = size;
  top_ = 0;
  uint32_t words = 1;
  while (words < size / 32 + 1) words <<= 1;  // RFC 6479 §2: at least one spare word
  ring_.assign(words, 0);
  mask_ = words - 1;
  return true;
}

int64_t ReplayWindow::InferHi(uint32_t lo) const {
  uint32_t tl = uint32_t(top_), th = uint32_t(top_ >> 32);
  uint32_t bl = tl - size_ + 1;  // low 32 bits of the window's bottom (mod 2^32)
  if (tl >= size_ - 1) {          // Case A: the window lies inside one subspace
    if (lo >= bl) return th;
    return th == 0xffffffffu ? -1 : int64_t(th) + 1;
  }
  if (lo >= bl) return th == 0 ? -1 : int64_t(th) - 1;  // Case B: a late packet of the previous subspace
  return th;
}

bool ReplayWindow::Check(uint64_t seq) const {
  if (seq == 0) return false;
  if (seq > top_) return true;
  if (top_ - seq >= size_) return false;
  return (ring_[uint32_t(seq >> 5) & mask_] & (1u << (seq & 31))) == 0;
}

bool ReplayWindow::Accept(uint64_t seq) {
  if (!Check(seq)) return false;
  if (seq > top_) {
    uint64_t topWord = top_ >> 5, newWord = seq >> 5;
    uint64_t n = newWord - topWord;
    if (n > uint64_t(mask_) + 1) n = uint64_t(mask_) + 1;
    for (uint64_t i = 1; i <= n; i++) ring_[uint32_t(topWord + i) & mask_] = 0;
    top_ = seq;
  }
  ring_[uint32_t(seq >> 5) & mask_] |= 1u << (seq & 31);
  return true;
}

// ------------------------------------------------------------------------------ SA

Sa* Sa::Create(const SaConfig& c, const char** err) {
  *err = nullptr;
  if (c.spi == 0) {
    *err = "SPI 0 is reserved";
    return nullptr;
  }
  const EVP_CIPHER* cipher = nullptr;
  bool aead = false;
  size_t icv = 0, keyLen = 0;
  const IntegInfo* integ = nullptr;
  int bits = c.encrKeyBits;
  switch (c.encr) {
    case kEncrAesGcm8:
    case kEncrAesGcm12:
    case kEncrAesGcm16:
      aead = true;
      icv = c.encr == kEncrAesGcm8 ? 8 : c.encr == kEncrAesGcm12 ? 12 : 16;
      cipher = bits == 128 ? EVP_aes_128_gcm() : bits == 192 ? EVP_aes_192_gcm() : bits == 256 ? EVP_aes_256_gcm() : nullptr;
      keyLen = size_t(bits) / 8;
      break;
    case kEncrChacha20Poly1305:
      if (bits != 256 && bits != 0) break;
      aead = true;
      icv = 16;
      cipher = EVP_chacha20_poly1305();
      keyLen = 32;
      break;
    case kEncrAesCbc:
      cipher = bits == 128 ? EVP_aes_128_cbc() : bits == 192 ? EVP_aes_192_cbc() : bits == 256 ? EVP_aes_256_cbc() : nullptr;
      keyLen = size_t(bits) / 8;
      integ = FindInteg(c.integ);
      if (!integ) cipher = nullptr;
      break;
    default:
      break;
  }
  if (!cipher || (aead && c.integ != kAuthNone)) {
    *err = "unsupported transform";
    return nullptr;
  }
  if (c.encrKeyLen != keyLen + (aead ? kAeadSaltSize : 0)) {
    *err = "bad encryption key length";
    return nullptr;
  }
  if (integ && c.integKeyLen != integ->keyLen) {
    *err = "bad integrity key length";
    return nullptr;
  }
  Sa* sa = new Sa();
  sa->inbound_ = c.inbound;
  sa->spi_ = c.spi;
  sa->aead_ = aead;
  sa->ivLen_ = aead ? kAeadIvSize : kCbcIvSize;
  sa->icvLen_ = aead ? icv : integ->icvLen;
  sa->blockLen_ = aead ? kEspMinAlign : kAesBlock;
  sa->esn_ = c.esn;
  sa->seq_ = c.esn ? (uint64_t(c.initialSeqHi) << 32) | c.initialSeq : c.initialSeq;
  sa->softBytes_ = c.softBytes;
  sa->hardBytes_ = c.hardBytes;
  sa->softPackets_ = c.softPackets;
  sa->hardPackets_ = c.hardPackets;
  sa->localTs_ = c.localTs;
  sa->remoteTs_ = c.remoteTs;
  if (c.inbound && !sa->replay_.Init(c.replayWindow)) {
    delete sa;
    *err = "bad replay window (multiple of 32 in [32, 2^20])";
    return nullptr;
  }
  sa->cipher_ = EVP_CIPHER_CTX_new();
  bool ok = sa->cipher_ != nullptr;
  int enc = c.inbound ? 0 : 1;
  if (ok) ok = EVP_CipherInit_ex(sa->cipher_, cipher, nullptr, nullptr, nullptr, enc) == 1;
  if (ok && aead) {
    // nonce = salt(4) | IV(8) = 12 bytes, the default for GCM and ChaCha20-Poly1305
    ok = EVP_CIPHER_CTX_ctrl(sa->cipher_, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1;
    memcpy(sa->salt_, c.encrKey + keyLen, kAeadSaltSize);
  }
  if (ok) ok = EVP_CipherInit_ex(sa->cipher_, nullptr, nullptr, c.encrKey, nullptr, enc) == 1;
  if (ok && !aead) ok = EVP_CIPHER_CTX_set_padding(sa->cipher_, 0) == 1;
  if (ok && integ) {
    EVP_MAC* algo = HmacAlgo();
    sa->mac_ = algo ? EVP_MAC_CTX_new(algo) : nullptr;
    ok = sa->mac_ != nullptr;
    if (ok) {
      OSSL_PARAM params[2];
      params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(integ->digest), 0);
      params[1] = OSSL_PARAM_construct_end();
      ok = EVP_MAC_init(sa->mac_, c.integKey, c.integKeyLen, params) == 1;
    }
  }
  if (!ok) {
    delete sa;
    *err = "OpenSSL refused the key";
    return nullptr;
  }
  return sa;
}

Sa::~Sa() {
  if (cipher_) EVP_CIPHER_CTX_free(cipher_);  // frees (and cleanses) the key schedule
  if (mac_) EVP_MAC_CTX_free(mac_);
  OPENSSL_cleanse(salt_, sizeof salt_);
}

size_t Sa::Overhead(size_t len) const {
  size_t pad = (blockLen_ - ((len + kTrailerFixed) % blockLen_)) % blockLen_;
  return kHeaderSize + ivLen_ + pad + kTrailerFixed + icvLen_;
}

int Sa::Count(size_t n) {
  bytes += double(n);
  packets += 1;
  int ev = 0;
  if (!softReached && ((softBytes_ > 0 && bytes >= softBytes_) || (softPackets_ > 0 && packets >= softPackets_))) {
    softReached = true;
    ev |= kEventSoft;
  }
  if (!hardReached && ((hardBytes_ > 0 && bytes >= hardBytes_) || (hardPackets_ > 0 && packets >= hardPackets_))) {
    hardReached = true;
    ev |= kEventHard;
  }
  return ev;
}

bool Sa::Mac(const uint8_t* p, size_t n, uint32_t seqHi, uint8_t* out) {
  // EVP_MAC_init with a NULL key restarts HMAC with the key already set (no allocation).
  size_t outl = 0;
  if (EVP_MAC_init(mac_, nullptr, 0, nullptr) != 1 || EVP_MAC_update(mac_, p, n) != 1) return false;
  if (esn_) {
    uint8_t hi[4];
    Wr32(hi, seqHi);
    if (EVP_MAC_update(mac_, hi, sizeof hi) != 1) return false;
  }
  return EVP_MAC_final(mac_, out, &outl, kMaxMac) == 1 && outl >= icvLen_;
}

bool Sa::Aad(const uint8_t* hdr, size_t n, uint32_t seqHi) {
  int outl = 0;
  if (!esn_) return EVP_CipherUpdate(cipher_, nullptr, &outl, hdr, int(n)) == 1;
  // SPI | seq-hi | seq-lo (the ESP header is exactly SPI | seq-lo here)
  uint8_t aad[12];
  memcpy(aad, hdr, 4);
  Wr32(aad + 4, seqHi);
  memcpy(aad + 8, hdr + 4, 4);
  return EVP_CipherUpdate(cipher_, nullptr, &outl, aad, sizeof aad) == 1;
}

bool Sa::Seal(uint8_t* buf, size_t hdrOff, size_t ivOff, size_t dataOff, size_t dataLen, uint32_t seqHi) {
  int n = 0, m = 0;
  if (aead_) {
    uint8_t nonce[12];
    memcpy(nonce, salt_, 4);
    memcpy(nonce + 4, buf + ivOff, kAeadIvSize);
    if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, nonce) != 1) return false;
    if (!Aad(buf + hdrOff, ivOff - hdrOff, seqHi)) return false;
    if (EVP_EncryptUpdate(cipher_, buf + dataOff, &n, buf + dataOff, int(dataLen)) != 1) return false;
    if (EVP_EncryptFinal_ex(cipher_, buf + dataOff + n, &m) != 1) return false;
    return EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_AEAD_GET_TAG, int(icvLen_), buf + dataOff + dataLen) == 1;
  }
  if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, buf + ivOff) != 1) return false;
  if (EVP_EncryptUpdate(cipher_, buf + dataOff, &n, buf + dataOff, int(dataLen)) != 1) return false;
  if (EVP_EncryptFinal_ex(cipher_, buf + dataOff + n, &m) != 1) return false;
  uint8_t mac[kMaxMac];
  if (!Mac(buf + hdrOff, dataOff + dataLen - hdrOff, seqHi, mac)) return false;
  memcpy(buf + dataOff + dataLen, mac, icvLen_);
  return true;
}

bool Sa::Open(uint8_t* buf, size_t hdrOff, size_t ivOff, size_t dataOff, size_t dataLen, uint32_t seqHi) {
  int n = 0, m = 0;
  uint8_t* icv = buf + dataOff + dataLen;
  if (aead_) {
    uint8_t nonce[12];
    memcpy(nonce, salt_, 4);
    memcpy(nonce + 4, buf + ivOff, kAeadIvSize);
    if (EVP_DecryptInit_ex(cipher_, nullptr, nullptr, nullptr, nonce) != 1) return false;
    if (!Aad(buf + hdrOff, ivOff - hdrOff, seqHi)) return false;
    if (EVP_DecryptUpdate(cipher_, buf + dataOff, &n, buf + dataOff, int(dataLen)) != 1) return false;
    if (EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_AEAD_SET_TAG, int(icvLen_), icv) != 1) return false;
    return EVP_DecryptFinal_ex(cipher_, buf + dataOff + n, &m) == 1;
  }
  uint8_t mac[kMaxMac];
  if (!Mac(buf + hdrOff, dataOff + dataLen - hdrOff, seqHi, mac)) return false;
  if (CRYPTO_memcmp(mac, icv, icvLen_) != 0) return false;
  if (EVP_DecryptInit_ex(cipher_, nullptr, nullptr, nullptr, buf + ivOff) != 1) return false;
  if (EVP_DecryptUpdate(cipher_, buf + dataOff, &n, buf + dataOff, int(dataLen)) != 1) return false;
  return EVP_DecryptFinal_ex(cipher_, buf + dataOff + n, &m) == 1;
}

bool Sa::PolicyAllows(const uint8_t* ip, bool inbound) const {
  bool v6 = (ip[0] >> 4) == 6;
  size_t alen = v6 ? 16 : 4;
  const uint8_t* src = ip + (v6 ? 8 : 12);
  const uint8_t* dst = ip + (v6 ? 24 : 16);
  const std::vector<Prefix>& srcSel = inbound ? remoteTs_ : localTs_;
  const std::vector<Prefix>& dstSel = inbound ? localTs_ : remoteTs_;
  bool s = false, d = false;
  for (const Prefix& p : srcSel)
    if (PrefixContains(p, src, alen)) {
      s = true;
      break;
    }
  if (!s) return false;
  for (const Prefix& p : dstSel)
    if (PrefixContains(p, dst, alen)) {
      d = true;
      break;
    }
  return d;
}

// The next number from the shared cell; *ok false when the numbers are used up (the event fires
// once on this queue's SA). Without ESN an atomic add: numbers past 2^32 - 1 are burnt but never
// sent, and the 64-bit cell cannot wrap in practice. With ESN the cell is the whole counter, so it
// must stop at 2^64 - 1: compare-and-swap instead of add.
uint64_t Sa::NextSeqShared(Span* span, bool* ok) {
  if (!esn_) {
    uint64_t s = __atomic_add_fetch(seqCell, 1, __ATOMIC_RELAXED);
    if (s > kSeqMax) {
      SeqExhaustedEvent(span);
      return 0;
    }
    *ok = true;
    return s;
  }
  uint64_t cur = __atomic_load_n(seqCell, __ATOMIC_RELAXED);
  do {
    if (cur == kSeqMaxEsn) {
      SeqExhaustedEvent(span);
      return 0;
    }
  } while (!__atomic_compare_exchange_n(seqCell, &cur, cur + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  *ok = true;
  return cur + 1;
}

int Sa::Encap(uint8_t* buf, size_t off, size_t len, size_t limit, Span* span) {
  span->event = 0;
  if (inbound_) return Drop(kNoSa);
  if (hardReached) return Drop(kExpired);
  if (seq() >= (esn_ ? kSeqMaxEsn : kSeqMax)) return SeqExhausted(span);
  if (len < 1) return Drop(kBadInner);
  unsigned v = buf[off] >> 4;
  uint8_t nextHeader = v == 4 ? kNextHeaderIpv4 : v == 6 ? kNextHeaderIpv6 : 0;
  if (nextHeader == 0) return Drop(kBadInner);

  size_t padLen = (blockLen_ - ((len + kTrailerFixed) % blockLen_)) % blockLen_;
  if (off < kHeaderSize + ivLen_) return Drop(kNoRoom);
  size_t hdrOff = off - kHeaderSize - ivLen_;
  size_t dataLen = len + padLen + kTrailerFixed;
  size_t end = off + dataLen + icvLen_;
  if (end > limit) return Drop(kNoRoom);

  uint64_t seq;
  if (seqCell) {
    bool ok = false;
    seq = NextSeqShared(span, &ok);
    if (!ok) return Drop(kSeqExhausted);  // another queue took the last one
  } else {
    seq = ++seq_;
  }
  uint32_t seqLo = uint32_t(seq), seqHi = uint32_t(seq >> 32);
  Wr32(buf + hdrOff, spi_);
  Wr32(buf + hdrOff + kSeqOffset, seqLo);
  size_t ivOff = hdrOff + kHeaderSize;
  if (aead_) {
    Wr32(buf + ivOff, seqHi);  // always 0 without ESN
    Wr32(buf + ivOff + 4, seqLo);
  } else if (!RandomIv(buf + ivOff, ivLen_)) {
    return Drop(kMalformed);
  }
  uint8_t* p = buf + off + len;
  for (size_t i = 1; i <= padLen; i++) *p++ = uint8_t(i);
  *p++ = uint8_t(padLen);
  *p = nextHeader;
  if (!Seal(buf, hdrOff, ivOff, off, dataLen, seqHi)) return Drop(kMalformed);
  span->off = hdrOff;
  span->len = end - hdrOff;
  span->event |= Count(len);
  return kNone;
}

int Sa::Decap(uint8_t* buf, size_t off, size_t len, Span* span) {
  span->event = 0;
  if (!inbound_) return Drop(kNoSa);
  if (hardReached) return Drop(kExpired);
  size_t fixed = kHeaderSize + ivLen_ + icvLen_;
  if (len < fixed + kTrailerFixed) return Drop(kShort);
  size_t ivOff = off + kHeaderSize;
  size_t dataOff = ivOff + ivLen_;
  size_t dataLen = len - fixed;
  if (dataLen % blockLen_ != 0) return Drop(kMalformed);

  uint32_t seqLo = Rd32(buf + off + kSeqOffset);
  uint32_t seqHi = 0;
  if (esn_) {
    int64_t hi = replay_.InferHi(seqLo);
    if (hi < 0) return Drop(kReplay);
    seqHi = uint32_t(hi);
  }
  uint64_t seq = (uint64_t(seqHi) << 32) | seqLo;
  if (!replay_.Check(seq)) return Drop(kReplay);
  if (!Open(buf, off, ivOff, dataOff, dataLen, seqHi)) return Drop(kIcv);
  replay_.Accept(seq);

  size_t end = dataOff + dataLen;
  size_t padLen = buf[end - 2];
  uint8_t nextHeader = buf[end - 1];
  if (padLen + kTrailerFixed > dataLen) return Drop(kBadPad);
  size_t innerLen = dataLen - kTrailerFixed - padLen;
  const uint8_t* pad = buf + end - 2 - padLen;
  for (size_t i = 1; i <= padLen; i++)
    if (pad[i - 1] != uint8_t(i)) return Drop(kBadPad);
  if (nextHeader == kNextHeaderNone) return Drop(kDummy);
  unsigned v = innerLen > 0 ? buf[dataOff] >> 4 : 0;
  if (!((nextHeader == kNextHeaderIpv4 && v == 4) || (nextHeader == kNextHeaderIpv6 && v == 6))) return Drop(kBadInner);
  long ipLen = InnerIpLength(buf + dataOff, innerLen);
  if (ipLen < 0) return Drop(kBadInner);
  if (!PolicyAllows(buf + dataOff, true)) return Drop(kPolicy);
  span->off = dataOff;
  span->len = size_t(ipLen);
  span->event = Count(size_t(ipLen));
  return kNone;
}

}  // namespace esp
}  // namespace vpcgw
