// See tun-open.h. Linux Documentation/networking/tuntap.rst describes the flags and ioctls.
#include "tun-open.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../core/offload.h"

namespace vpcgw {

TunOpenResult OpenTunDevice(const std::string& name, bool vnetHdr, bool multiQueue) {
  TunOpenResult r;
  if (name.size() >= IFNAMSIZ) {
    r.err = ENAMETOOLONG;
    r.syscall = "TUNSETIFF";
    return r;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    r.err = errno;
    r.syscall = "open";
    return r;
  }
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0) | (multiQueue ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    r.err = errno;
    r.syscall = "TUNSETIFF";
    close(fd);
    return r;
  }
  if (vnetHdr) {
    int sz = int(offload::kVnetHdrSize);
    unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 || ioctl(fd, TUNSETOFFLOAD, off) < 0) {
      r.err = errno;
      r.syscall = "TUNSETOFFLOAD";
      close(fd);
      return r;
    }
  }
  r.fd = fd;
  r.name.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  return r;
}

}  // namespace vpcgw
