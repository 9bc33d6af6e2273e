// Entry point of vpcgw_native_test.node, the test-only addon (binding.gyp target vpcgw_native_test):
// single-SA ESP and single-session OpenVPN cores and the policy stage that tests and micro benchmarks drive directly.
// The production addon (../addon.cc) does not contain them; src/native/test-cores.ts loads this one.
#include <napi.h>

namespace vpcgw {
void InitEspCore(Napi::Env env, Napi::Object exports);
void InitOvpnCore(Napi::Env env, Napi::Object exports);
void InitPolicyCore(Napi::Env env, Napi::Object exports);
}  // namespace vpcgw

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vpcgw::InitEspCore(env, exports);
  vpcgw::InitOvpnCore(env, exports);
  vpcgw::InitPolicyCore(env, exports);
  exports.Set("testAbi", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(vpcgw_native_test, Init)
