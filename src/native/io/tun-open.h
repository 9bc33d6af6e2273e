// The one place that opens a Linux TUN device (/dev/net/tun + TUNSETIFF), used by the plain TUN
// handle (tun.cc: TunHandle) and by the data-plane engine's openTun (vnet headers, multi-queue).
// No N-API here: callers turn a failure into a JS errno error.
#pragma once

#include <string>

namespace vpcgw {

struct TunOpenResult {
  int fd = -1;               // >= 0 on success (nonblocking, close-on-exec)
  int err = 0;               // errno on failure
  const char* syscall = "";  // the call that failed: "open", "TUNSETIFF" or "TUNSETOFFLOAD"
  std::string name;          // the kernel's name for the device (a '' request gets tunN)
};

// Opens the TUN `name` ('' = kernel-chosen) with IFF_TUN | IFF_NO_PI, plus IFF_VNET_HDR and the
// checksum/TSO offloads (a 10-byte virtio_net_hdr before each packet) when `vnetHdr`, and
// IFF_MULTI_QUEUE when `multiQueue` (each open of the same name adds a queue).
TunOpenResult OpenTunDevice(const std::string& name, bool vnetHdr, bool multiQueue);

}  // namespace vpcgw
