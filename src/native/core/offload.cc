// TUN offloads, see offload.h. Checksums: RFC 1071 one's complement sums; TCP pseudo-headers per
// RFC 9293 §3.1 (IPv4) and RFC 8200 §8.1 (IPv6).
#include "offload.h"

#include <cstring>

#include "bytes.h"

namespace vpcgw {
namespace offload {
namespace {

constexpr size_t kIpv4Min = 20;
constexpr size_t kIpv6Hdr = 40;
constexpr size_t kTcpMin = 20;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10, kTcpUrg = 0x20,
                  kTcpEce = 0x40, kTcpCwr = 0x80;

uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 2) {
    acc += (uint32_t(p[0]) << 8) | p[1];
    p += 2;
    n -= 2;
  }
  if (n) acc += uint32_t(p[0]) << 8;
  return acc;
}

uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

// Pseudo-header sum for TCP over the IP header at ip (v6: 40-byte header) with tcpLen bytes.
uint64_t PseudoSum(const uint8_t* ip, bool v6, size_t tcpLen) {
  uint64_t acc = 0;
  if (v6) {
    acc = Sum(ip + 8, 32, 0);
  } else {
    acc = Sum(ip + 12, 8, 0);
  }
  acc += kProtoTcp;
  acc += uint32_t(tcpLen);
  return acc;
}

void Ipv4HeaderChecksum(uint8_t* ip, size_t ihl) {
  Wr16(ip + 10, 0);
  Wr16(ip + 10, uint16_t(~Fold(Sum(ip, ihl, 0))));
}

// Parses IP + TCP headers: returns the IP header length (and sets tcpHdr, v6) or 0 when not a plain
// TCP packet we can segment/coalesce (IPv4 without fragments, IPv6 without extension headers).
size_t ParseTcp(const uint8_t* pkt, size_t len, size_t* tcpHdr, bool* v6) {
  if (len < 1) return 0;
  unsigned v = pkt[0] >> 4;
  size_t ipHdr = 0;
  if (v == 4) {
    if (len < kIpv4Min) return 0;
    ipHdr = size_t(pkt[0] & 0x0f) * 4;
    if (ipHdr < kIpv4Min || len < ipHdr + kTcpMin || pkt[9] != kProtoTcp) return 0;
    if ((Rd16(pkt + 6) & 0x3fff) != 0) return 0;  // MF or fragment offset
    *v6 = false;
  } else if (v == 6) {
    if (len < kIpv6Hdr + kTcpMin || pkt[6] != kProtoTcp) return 0;
    ipHdr = kIpv6Hdr;
    *v6 = true;
  } else {
    return 0;
  }
  size_t th = size_t(pkt[ipHdr + 12] >> 4) * 4;
  if (th < kTcpMin || len < ipHdr + th) return 0;
  *tcpHdr = th;
  return ipHdr;
}

}  // namespace

bool CompleteChecksum(uint8_t* pkt, size_t len, size_t csumStart, size_t csumOffset) {
  if (csumStart >= len || csumOffset + 2 > len - csumStart) return false;
  uint16_t c = uint16_t(~Fold(Sum(pkt + csumStart, len - csumStart, 0)));
  Wr16(pkt + csumStart + csumOffset, c);
  return true;
}

int TcpSegment(const uint8_t* pkt, size_t len, size_t gsoSize, uint8_t* out, size_t slotStride, size_t slotMax,
               uint32_t* lens, size_t maxSegs) {
  size_t tcpHdr = 0;
  bool v6 = false;
  size_t ipHdr = ParseTcp(pkt, len, &tcpHdr, &v6);
  if (ipHdr == 0 || gsoSize == 0) return -1;
  size_t hdr = ipHdr + tcpHdr;
  // the IP length field may be 0 or stale for super-packets: trust the read length
  size_t payload = len - hdr;
  size_t segs = payload == 0 ? 1 : (payload + gsoSize - 1) / gsoSize;
  if (segs > maxSegs || hdr + (payload < gsoSize ? payload : gsoSize) > slotMax) return -1;
  uint32_t seq = Rd32(pkt + ipHdr + 4);
  uint8_t flags = pkt[ipHdr + 13];
  uint16_t id = v6 ? 0 : Rd16(pkt + 4);
  for (size_t i = 0; i < segs; i++) {
    size_t off = i * gsoSize;
    size_t n = payload - off < gsoSize ? payload - off : gsoSize;
    uint8_t* s = out + i * slotStride;
    memcpy(s, pkt, hdr);
    memcpy(s + hdr, pkt + hdr + off, n);
    size_t total = hdr + n;
    if (v6) {
      Wr16(s + 4, uint16_t(total - kIpv6Hdr));
    } else {
      Wr16(s + 2, uint16_t(total));
      Wr16(s + 4, uint16_t(id + i));
      Ipv4HeaderChecksum(s, ipHdr);
    }
    uint8_t* t = s + ipHdr;
    Wr32(t + 4, seq + uint32_t(off));
    uint8_t f = flags;
    if (i + 1 < segs) f &= uint8_t(~(kTcpFin | kTcpPsh));
    if (i > 0) f &= uint8_t(~kTcpCwr);
    t[13] = f;
    Wr16(t + 16, 0);
    uint64_t acc = PseudoSum(s, v6, tcpHdr + n);
    Wr16(t + 16, uint16_t(~Fold(Sum(t, tcpHdr + n, acc))));
    lens[i] = uint32_t(total);
  }
  return int(segs);
}

// ------------------------------------------------------------------------------ GRO

bool Coalescer::Start(const uint8_t* pkt, size_t len) {
  len_ = 0;
  segs_ = 0;
  closed_ = false;
  tcp_ = false;
  if (len + kVnetHdrSize > cap_) return false;
  memcpy(buf_ + kVnetHdrSize, pkt, len);
  len_ = len;
  segs_ = 1;
  size_t tcpHdr = 0;
  bool v6 = false;
  size_t ipHdr = ParseTcp(pkt, len, &tcpHdr, &v6);
  if (ipHdr == 0) return true;
  uint8_t f = pkt[ipHdr + 13];
  // only plain data segments (ACK, maybe PSH) start a run; IPv4 options are not coalesced
  if ((f & ~(kTcpAck | kTcpPsh)) != 0 || !(f & kTcpAck) || (!v6 && ipHdr != kIpv4Min)) return true;
  size_t hdr = ipHdr + tcpHdr;
  if (len <= hdr) return true;
  tcp_ = true;
  v6_ = v6;
  ipHdr_ = ipHdr;
  hdrLen_ = hdr;
  mss_ = len - hdr;
  nextSeq_ = Rd32(pkt + ipHdr + 4) + uint32_t(mss_);
  closed_ = (f & kTcpPsh) != 0;
  return true;
}

bool Coalescer::Append(const uint8_t* pkt, size_t len) {
  if (!tcp_ || closed_ || len <= hdrLen_ || len - hdrLen_ > mss_) return false;
  if (len_ + (len - hdrLen_) + kVnetHdrSize > cap_ || len_ + (len - hdrLen_) > 65535 || segs_ >= 64) return false;
  const uint8_t* first = buf_ + kVnetHdrSize;
  size_t tcpHdr = 0;
  bool v6 = false;
  size_t ipHdr = ParseTcp(pkt, len, &tcpHdr, &v6);
  if (ipHdr != ipHdr_ || v6 != v6_ || ipHdr + tcpHdr != hdrLen_) return false;
  const uint8_t* t = pkt + ipHdr;
  const uint8_t* ft = first + ipHdr_;
  uint8_t f = t[13];
  if ((f & ~(kTcpAck | kTcpPsh)) != 0 || !(f & kTcpAck)) return false;
  if (Rd32(t + 4) != nextSeq_) return false;
  if (v6) {
    // same addresses, traffic class and flow label
    if (memcmp(pkt, first, 4) != 0 || memcmp(pkt + 8, first + 8, 32) != 0 || pkt[7] != first[7]) return false;
  } else {
    // same addresses, TOS, TTL, DF
    if (memcmp(pkt + 12, first + 12, 8) != 0 || pkt[1] != first[1] || pkt[8] != first[8] || pkt[6] != first[6]) return false;
  }
  // same ports, ack number, window and options (TSO bursts share their timestamps)
  if (memcmp(t, ft, 4) != 0 || memcmp(t + 8, ft + 8, 4) != 0 || memcmp(t + 14, ft + 14, 2) != 0 ||
      memcmp(t + kTcpMin, ft + kTcpMin, tcpHdr - kTcpMin) != 0)
    return false;
  size_t n = len - hdrLen_;
  memcpy(buf_ + kVnetHdrSize + len_, pkt + hdrLen_, n);
  len_ += n;
  segs_++;
  nextSeq_ += uint32_t(n);
  if (n < mss_ || (f & kTcpPsh)) {
    closed_ = true;
    if (f & kTcpPsh) buf_[kVnetHdrSize + ipHdr_ + 13] |= kTcpPsh;
  }
  return true;
}

const uint8_t* Coalescer::Finish(size_t* size, uint32_t* segments) {
  VnetHdr h;
  memset(&h, 0, sizeof h);
  uint8_t* ip = buf_ + kVnetHdrSize;
  if (tcp_ && segs_ > 1) {
    if (v6_) {
      Wr16(ip + 4, uint16_t(len_ - kIpv6Hdr));
    } else {
      Wr16(ip + 2, uint16_t(len_));
      Ipv4HeaderChecksum(ip, ipHdr_);
    }
    // the kernel finishes the checksum per segment: store the pseudo-header sum (not inverted)
    uint8_t* t = ip + ipHdr_;
    Wr16(t + 16, Fold(PseudoSum(ip, v6_, len_ - ipHdr_)));
    h.flags = kFlagNeedsCsum;
    h.gsoType = v6_ ? kGsoTcpv6 : kGsoTcpv4;
    h.hdrLen = uint16_t(hdrLen_);
    h.gsoSize = uint16_t(mss_);
    h.csumStart = uint16_t(ipHdr_);
    h.csumOffset = 16;
  }
  memcpy(buf_, &h, sizeof h);  // little-endian fields: x86/arm64 hosts (virtio 1.0 legacy: native)
  *size = len_ + kVnetHdrSize;
  *segments = segs_;
  len_ = 0;
  segs_ = 0;
  tcp_ = false;
  closed_ = false;
  return buf_;
}

}  // namespace offload
}  // namespace vpcgw
