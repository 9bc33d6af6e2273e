// TUN offloads (IFF_VNET_HDR): checksum completion and TCP segmentation of super-packets read from
// the TUN (TSO), and coalescing of in-order TCP segments into one super-packet written to it (GRO).
// Pure functions over buffers, no I/O: the data-plane engine (../engine/engine.cc) calls them,
// test/fuzz can drive them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vpcgw {
namespace offload {

// include/uapi/linux/virtio_net.h (the legacy 10-byte header used by TUN with IFF_VNET_HDR)
struct VnetHdr {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
} __attribute__((packed));
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");

constexpr size_t kVnetHdrSize = 10;
constexpr uint8_t kFlagNeedsCsum = 1;
constexpr uint8_t kFlagDataValid = 2;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpv4 = 1;
constexpr uint8_t kGsoUdp = 3;
constexpr uint8_t kGsoTcpv6 = 4;
constexpr uint8_t kGsoEcn = 0x80;

// Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): sums pkt[csumStart, len) and stores
// the folded result at csumStart + csumOffset. False when the offsets do not fit.
bool CompleteChecksum(uint8_t* pkt, size_t len, size_t csumStart, size_t csumOffset);

// Splits a TCP super-packet (IPv4 or IPv6 without extension headers) into segments of at most
// gsoSize payload bytes. Segment i is written at out + i * slotStride (headers then payload) and its
// length stored in lens[i]. IP length/id/checksum, TCP seq/flags/checksum are rewritten per segment
// (FIN/PSH on the last only, CWR on the first only). Returns the segment count, or -1 when the packet
// is not a segmentable TCP packet or needs more than maxSegs segments or bigger slots.
int TcpSegment(const uint8_t* pkt, size_t len, size_t gsoSize, uint8_t* out, size_t slotStride, size_t slotMax,
               uint32_t* lens, size_t maxSegs);

// Accumulates decrypted IP packets for one TUN write: in-order TCP segments of one flow with equal
// MSS-sized payloads are coalesced into a super-packet carrying a virtio_net_hdr (GSO TCPv4/TCPv6);
// anything else is written alone with a zero header. The caller owns the buffer.
class Coalescer {
 public:
  // buf: at least kVnetHdrSize + 65535 bytes.
  Coalescer(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}
  // Tries to append the IP packet; returns false when it cannot join the pending super-packet (the
  // caller then flushes the pending one and calls Start with this packet).
  bool Append(const uint8_t* pkt, size_t len);
  // Starts a new pending packet (copy). Returns false when it does not fit (caller writes it plainly).
  bool Start(const uint8_t* pkt, size_t len);
  bool Pending() const { return len_ > 0; }
  // Finishes the pending packet (header, IP length and checksums) and returns [data, size) to write
  // (vnet header included); resets.
  const uint8_t* Finish(size_t* size, uint32_t* segments);

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t len_ = 0;  // IP bytes pending (after the vnet header)
  bool tcp_ = false;
  bool v6_ = false;
  size_t ipHdr_ = 0, hdrLen_ = 0;  // IP header length, IP+TCP header length
  size_t mss_ = 0;
  uint32_t nextSeq_ = 0;
  uint32_t segs_ = 0;
  bool closed_ = false;  // last segment was shorter than mss or carried PSH: nothing may follow
};

}  // namespace offload
}  // namespace vpcgw
