// Link, address and route configuration over rtnetlink (no spawning `ip`). Each call opens a
// NETLINK_ROUTE socket, sends one request with NLM_F_ACK and returns 0 or a positive errno; the TS
// layer (src/tun/netcfg.ts) turns a nonzero errno into an IoError naming the operation and object.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../napi-util.h"

namespace vpcgw {
namespace {

struct NlRequest {
  alignas(NLMSG_ALIGNTO) uint8_t data[512];
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(data); }

  NlRequest(uint16_t type, uint16_t flags, size_t bodyLen) {
    memset(data, 0, sizeof data);
    hdr()->nlmsg_len = NLMSG_LENGTH(bodyLen);
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    hdr()->nlmsg_seq = 1;
  }
  void* body() { return NLMSG_DATA(hdr()); }

  bool Attr(uint16_t type, const void* value, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    size_t alen = RTA_LENGTH(len);
    if (at + RTA_ALIGN(alen) > sizeof data) return false;
    rtattr* a = reinterpret_cast<rtattr*>(data + at);
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(alen);
    memcpy(RTA_DATA(a), value, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(alen));
    return true;
  }
  bool AttrU32(uint16_t type, uint32_t v) { return Attr(type, &v, sizeof v); }
};

// Sends the request and waits for its ACK; returns 0 or a positive errno.
int Transact(NlRequest& req) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  int rc = 0;
  if (sendto(fd, req.data, req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    rc = errno;
    close(fd);
    return rc;
  }
  alignas(NLMSG_ALIGNTO) uint8_t buf[8192];
  for (int tries = 0; tries < 16; tries++) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = errno;
      break;
    }
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<uint32_t>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        close(fd);
        return e->error < 0 ? -e->error : 0;
      }
    }
  }
  close(fd);
  return rc ? rc : EPROTO;
}

int IfIndex(const std::string& name, int* out) {
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) return errno ? errno : ENODEV;
  *out = static_cast<int>(idx);
  return 0;
}

// nlLink(name, up: -1|0|1, mtu: 0 = unchanged) -> errno
Napi::Value NlLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) {
    ThrowType(env, "nlLink(name, up, mtu)");
    return env.Undefined();
  }
  int idx = 0;
  int rc = IfIndex(info[0].As<Napi::String>().Utf8Value(), &idx);
  if (rc) return Napi::Number::New(env, rc);
  int up = info[1].As<Napi::Number>().Int32Value();
  uint32_t mtu = info[2].As<Napi::Number>().Uint32Value();
  NlRequest req(RTM_NEWLINK, 0, sizeof(ifinfomsg));
  ifinfomsg* ifi = static_cast<ifinfomsg*>(req.body());
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = idx;
  if (up >= 0) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = up ? IFF_UP : 0;
  }
  if (mtu) req.AttrU32(IFLA_MTU, mtu);
  return Napi::Number::New(env, Transact(req));
}

// nlAddr(add: boolean, name, family 4|6, addr: Buffer(4|16), prefixLen) -> errno
Napi::Value NlAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RawView a;
  if (info.Length() < 5 || !info[1].IsString() || !GetRaw(env, info[3], &a)) {
    ThrowType(env, "nlAddr(add, name, family, addr, prefixLen)");
    return env.Undefined();
  }
  bool add = info[0].ToBoolean().Value();
  int fam = info[2].As<Napi::Number>().Int32Value();
  size_t alen = fam == 4 ? 4 : 16;
  if ((fam != 4 && fam != 6) || a.bytes != alen) {
    ThrowType(env, "nlAddr: bad family/address");
    return env.Undefined();
  }
  int idx = 0;
  int rc = IfIndex(info[1].As<Napi::String>().Utf8Value(), &idx);
  if (rc) return Napi::Number::New(env, rc);
  NlRequest req(add ? RTM_NEWADDR : RTM_DELADDR, add ? (NLM_F_CREATE | NLM_F_EXCL) : 0, sizeof(ifaddrmsg));
  ifaddrmsg* ifa = static_cast<ifaddrmsg*>(req.body());
  ifa->ifa_family = fam == 4 ? AF_INET : AF_INET6;
  ifa->ifa_prefixlen = static_cast<uint8_t>(info[4].As<Napi::Number>().Uint32Value());
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(idx);
  req.Attr(IFA_LOCAL, a.data, alen);
  req.Attr(IFA_ADDRESS, a.data, alen);
  if (fam == 6) {
    uint32_t flags = IFA_F_NODAD;  // a point-to-point TUN has no neighbours to detect duplicates with
    req.AttrU32(IFA_FLAGS, flags);
  }
  return Napi::Number::New(env, Transact(req));
}

// nlRoute(add: boolean, family, dst: Buffer(4|16), prefixLen, dev, metric (-1 = none)) -> errno
Napi::Value NlRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RawView d;
  if (info.Length() < 6 || !GetRaw(env, info[2], &d) || !info[4].IsString()) {
    ThrowType(env, "nlRoute(add, family, dst, prefixLen, dev, metric)");
    return env.Undefined();
  }
  bool add = info[0].ToBoolean().Value();
  int fam = info[1].As<Napi::Number>().Int32Value();
  size_t alen = fam == 4 ? 4 : 16;
  if ((fam != 4 && fam != 6) || d.bytes != alen) {
    ThrowType(env, "nlRoute: bad family/address");
    return env.Undefined();
  }
  int idx = 0;
  int rc = IfIndex(info[4].As<Napi::String>().Utf8Value(), &idx);
  if (rc) return Napi::Number::New(env, rc);
  int metric = info[5].As<Napi::Number>().Int32Value();
  NlRequest req(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? (NLM_F_CREATE | NLM_F_REPLACE) : 0, sizeof(rtmsg));
  rtmsg* rt = static_cast<rtmsg*>(req.body());
  rt->rtm_family = fam == 4 ? AF_INET : AF_INET6;
  rt->rtm_dst_len = static_cast<uint8_t>(info[3].As<Napi::Number>().Uint32Value());
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = add ? RTPROT_STATIC : RTPROT_UNSPEC;
  // A device route on v4 is link-scoped (like `ip route add P dev D`); v6 routes are universe.
  rt->rtm_scope = !add ? RT_SCOPE_NOWHERE : (fam == 4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  rt->rtm_type = RTN_UNICAST;
  if (rt->rtm_dst_len > 0) req.Attr(RTA_DST, d.data, alen);
  req.AttrU32(RTA_OIF, static_cast<uint32_t>(idx));
  if (metric >= 0) req.AttrU32(RTA_PRIORITY, static_cast<uint32_t>(metric));
  return Napi::Number::New(env, Transact(req));
}

Napi::Value StrError(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), strerror(info[0].As<Napi::Number>().Int32Value()));
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("nlLink", Napi::Function::New(env, NlLink, "nlLink"));
  exports.Set("nlAddr", Napi::Function::New(env, NlAddr, "nlAddr"));
  exports.Set("nlRoute", Napi::Function::New(env, NlRoute, "nlRoute"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
}

}  // namespace vpcgw
