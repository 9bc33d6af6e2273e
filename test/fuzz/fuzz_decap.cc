// libFuzzer harness around the native data plane's hostile-input entry points (src/native/core):
//   esp::Sa::Decap      — any bytes as an ESP packet, for each algorithm (mode 0);
//   esp::Sa::Decap      — any bytes as the *plaintext* of a correctly sealed AES-GCM packet, so the
//                         padding / next header / inner IP / policy checks see hostile data (mode 1);
//   offload::TcpSegment — any bytes as a TSO super-packet from the TUN (mode 2);
//   offload::Coalescer  — any bytes split into packets for GRO (mode 2).
// Built with -fsanitize=fuzzer,address,undefined by test/fuzz/run.sh against the system libcrypto.
//
// Input: byte 0 = mode (bits 6-7) | suite (bits 0-2); the rest is the payload. Keys are the fixed
// test pattern of test/unit/esp/packets.ts keys(suite, 1), so seeds made by the TS encoder decrypt.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../src/native/core/esp.h"
#include "../../src/native/core/offload.h"

using namespace vpcgw;

namespace {

struct Suite {
  int encr, bits, integ;
  size_t encrKeyLen, integKeyLen;
};
const Suite kSuites[] = {
    {20, 128, 0, 20, 0},  {20, 256, 0, 36, 0},   {28, 256, 0, 36, 0},
    {12, 128, 12, 16, 32}, {12, 256, 2, 32, 20}, {18, 128, 0, 20, 0},
};
constexpr int kSuiteCount = 6;
constexpr uint32_t kSpi = 0xc0ffee01;

esp::Prefix Pfx(int fam, int len, std::initializer_list<uint8_t> b) {
  esp::Prefix p;
  p.family = uint8_t(fam);
  p.len = uint8_t(len);
  size_t i = 0;
  for (uint8_t x : b) p.bytes[i++] = x;
  return p;
}

esp::Sa* MakeSa(int s) {
  const Suite& su = kSuites[s];
  std::vector<uint8_t> ek(su.encrKeyLen), ik(su.integKeyLen);
  for (size_t i = 0; i < ek.size(); i++) ek[i] = uint8_t(31 + i * 7);
  for (size_t i = 0; i < ik.size(); i++) ik[i] = uint8_t(17 + i * 13 + 1);
  esp::SaConfig c;
  c.inbound = true;
  c.spi = kSpi;
  c.encr = su.encr;
  c.encrKeyBits = su.bits;
  c.integ = su.integ;
  c.encrKey = ek.data();
  c.encrKeyLen = ek.size();
  c.integKey = ik.data();
  c.integKeyLen = ik.size();
  c.replayWindow = 64;
  // the receiver's view of site A (10.1/16, fd01::/64) -> site B (10.2/16, fd02::/64)
  c.localTs = {Pfx(4, 16, {10, 2}), Pfx(6, 64, {0xfd, 0x02})};
  c.remoteTs = {Pfx(4, 16, {10, 1}), Pfx(6, 64, {0xfd, 0x01})};
  c.softPackets = 1000;
  c.hardPackets = 1u << 30;
  const char* err = nullptr;
  esp::Sa* sa = esp::Sa::Create(c, &err);
  if (!sa) __builtin_trap();
  return sa;
}

esp::Sa* gSa[kSuiteCount];
esp::Sa* gRawSa;  // mode 1 only: its replay window sees only SealRaw's sequence numbers
uint32_t gSeq = 0;

// Mode 1: seal `plain` as an AES-128-GCM ESP packet (suite 0 keys) with a fresh sequence number.
size_t SealRaw(const uint8_t* plain, size_t n, uint8_t* out) {
  static EVP_CIPHER_CTX* ctx = nullptr;
  uint8_t key[16], salt[4];
  for (size_t i = 0; i < 20; i++) (i < 16 ? key[i] : salt[i - 16]) = uint8_t(31 + i * 7);
  if (!ctx) {
    ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key, nullptr);
  }
  uint32_t seq = ++gSeq;
  uint8_t* p = out;
  p[0] = uint8_t(kSpi >> 24), p[1] = uint8_t(kSpi >> 16), p[2] = uint8_t(kSpi >> 8), p[3] = uint8_t(kSpi);
  p[4] = uint8_t(seq >> 24), p[5] = uint8_t(seq >> 16), p[6] = uint8_t(seq >> 8), p[7] = uint8_t(seq);
  memset(p + 8, 0, 4);
  memcpy(p + 12, p + 4, 4);
  uint8_t nonce[12];
  memcpy(nonce, salt, 4);
  memcpy(nonce + 4, p + 8, 8);
  int l = 0;
  EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce);
  EVP_EncryptUpdate(ctx, nullptr, &l, p, 8);
  EVP_EncryptUpdate(ctx, p + 16, &l, plain, int(n));
  EVP_EncryptFinal_ex(ctx, p + 16 + n, &l);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, p + 16 + n);
  return 16 + n + 16;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (int s = 0; s < kSuiteCount; s++) gSa[s] = MakeSa(s);
  gRawSa = MakeSa(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] >> 6;
  int suite = (data[0] & 7) % kSuiteCount;
  const uint8_t* d = data + 1;
  size_t n = size - 1;
  if (n > 70000) return 0;
  // exact-size heap copies so ASan sees any read past the packet
  if (mode == 0) {
    std::vector<uint8_t> buf(d, d + n);
    esp::Span span;
    int r = gSa[suite]->Decap(buf.data(), 0, buf.size(), &span);
    if (r == esp::kNone && (span.off + span.len > buf.size() || span.len < 20)) __builtin_trap();
  } else if (mode == 1) {
    if (n < 2 || n % 4 != 0) return 0;  // GCM: the plaintext (with its trailer) is a multiple of 4
    std::vector<uint8_t> plain(d, d + n);
    std::vector<uint8_t> tmp(n + 32);
    size_t len = SealRaw(plain.data(), plain.size(), tmp.data());
    std::vector<uint8_t> buf(tmp.begin(), tmp.begin() + long(len));
    esp::Span span;
    int r = gRawSa->Decap(buf.data(), 0, buf.size(), &span);
    if (r == esp::kNone && span.off + span.len > buf.size()) __builtin_trap();
    if (r == esp::kShort || r == esp::kReplay) __builtin_trap();  // a well-formed, fresh packet
  } else {
    if (n < 2) return 0;
    size_t gso = (size_t(d[0]) << 8 | d[1]);
    std::vector<uint8_t> pkt(d + 2, d + n);
    constexpr size_t kSlot = 1600, kSegs = 64;
    std::vector<uint8_t> out(kSlot * kSegs);
    uint32_t lens[kSegs];
    int segs = offload::TcpSegment(pkt.data(), pkt.size(), gso, out.data(), kSlot, 1500, lens, kSegs);
    if (segs > int(kSegs)) __builtin_trap();
    for (int i = 0; i < segs; i++)
      if (lens[i] > 1500) __builtin_trap();
    offload::CompleteChecksum(pkt.data(), pkt.size(), gso & 0xff, gso >> 8);
    // GRO: the input cut into packets at the lengths of the segments (or in two halves)
    std::vector<uint8_t> gro(65535 + offload::kVnetHdrSize);
    offload::Coalescer c(gro.data(), gro.size());
    size_t off = 0;
    for (int i = 0; i < (segs > 0 ? segs : 2) && off < pkt.size(); i++) {
      size_t l = segs > 0 ? lens[i] : (pkt.size() + 1) / 2;
      if (l > pkt.size() - off) l = pkt.size() - off;
      std::vector<uint8_t> one(segs > 0 ? out.data() + size_t(i) * kSlot : pkt.data() + off,
                               (segs > 0 ? out.data() + size_t(i) * kSlot : pkt.data() + off) + l);
      if (!(c.Pending() && c.Append(one.data(), one.size()))) {
        if (c.Pending()) {
          size_t sz = 0;
          uint32_t sg = 0;
          c.Finish(&sz, &sg);
          if (sz > gro.size()) __builtin_trap();
        }
        c.Start(one.data(), one.size());
      }
      off += l;
    }
    if (c.Pending()) {
      size_t sz = 0;
      uint32_t sg = 0;
      c.Finish(&sz, &sg);
      if (sz > gro.size()) __builtin_trap();
    }
  }
  return 0;
}
