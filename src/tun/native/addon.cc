// vpcgw native addon entry point: TUN (tun.cc), UDP (udp.cc) and rtnetlink (netlink.cc).
// Later: in-place AEAD with a reused EVP_CIPHER_CTX (crypto.cc, Node's OpenSSL, no -lcrypto).
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vpcgw::InitTun(env, exports);
  vpcgw::InitUdp(env, exports);
  vpcgw::InitNetlink(env, exports);
  vpcgw::InitDataPlane(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(vpcgw_native, Init)
