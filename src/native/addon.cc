// vpcgw native addon entry point (build/Release/vpcgw_native.node, loaded by src/native/loader.ts):
// the I/O handles (io/: TUN, UDP, rtnetlink) and the data-plane engine (engine/), which runs the
// packet cores of core/ (ESP, OpenVPN data channel, offloads). The test-only single-SA and
// single-session cores live in a second addon (testing/, vpcgw_native_test.node).
#include "napi-util.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vpcgw::InitTun(env, exports);
  vpcgw::InitUdp(env, exports);
  vpcgw::InitNetlink(env, exports);
  vpcgw::InitDataPlane(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(vpcgw_native, Init)
