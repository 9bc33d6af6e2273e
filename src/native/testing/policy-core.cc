// Test-only: the data path's policy stage (../core/policy.h) outside any data plane, with the
// methods of the sans-I/O PolicyStageApi (src/vpcep/policy.ts) and an explicit `now`, for the
// tests in test/unit/native/core/policy.test.ts and the shared policy scenarios. Built into
// vpcgw_native_test.node only; src/dataplane/native-policy.ts wraps it.
#include <memory>

#include "../core/policy.h"
#include "../engine/parse-policy.h"
#include "../napi-util.h"

namespace vpcgw {
namespace {

// new PolicyCore(); setPolicy(policy, now); inbound(buf, off, len, origin, now) -> verdict;
// outbound(buf, off, len, now) -> verdict; expire(now) -> removed; counters(out: Float64Array) ->
// doubles needed (filled when out is large enough).
class PolicyCore : public Napi::ObjectWrap<PolicyCore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PolicyCore",
                       {
                           InstanceMethod<&PolicyCore::SetPolicy>("setPolicy"),
                           InstanceMethod<&PolicyCore::Inbound>("inbound"),
                           InstanceMethod<&PolicyCore::Outbound>("outbound"),
                           InstanceMethod<&PolicyCore::Expire>("expire"),
                           InstanceMethod<&PolicyCore::Counters>("counters"),
                       });
  }

  explicit PolicyCore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PolicyCore>(info), s_(new policy::Stage()) {}

 private:
  static double Now(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 0;
  }

  Napi::Value SetPolicy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    policy::Config c;
    const char* err = "setPolicy(policy, now)";
    if (info.Length() < 1 || !ParsePolicy(env, info[0], &c, &err)) {
      ThrowType(env, err);
      return env.Undefined();
    }
    s_->SetPolicy(c, Now(info, 1));
    return env.Undefined();
  }

  // buf[off, off + len) must lie inside the buffer (the data planes guarantee it; here a bad call
  // is a test bug and throws)
  bool View(const Napi::CallbackInfo& info, uint8_t** p, size_t* len) {
    RawView b;
    if (info.Length() < 3 || !GetRaw(info.Env(), info[0], &b) || !info[1].IsNumber() || !info[2].IsNumber()) return false;
    size_t off = info[1].As<Napi::Number>().Uint32Value(), n = info[2].As<Napi::Number>().Uint32Value();
    if (off + n > b.bytes) return false;
    *p = b.data + off;
    *len = n;
    return true;
  }

  Napi::Value Inbound(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* p;
    size_t len;
    if (!View(info, &p, &len) || info.Length() < 4 || !info[3].IsNumber()) {
      ThrowType(env, "inbound(buf, off, len, origin, now)");
      return env.Undefined();
    }
    return Napi::Number::New(env, s_->Inbound(p, len, info[3].As<Napi::Number>().Uint32Value(), Now(info, 4)));
  }

  Napi::Value Outbound(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* p;
    size_t len;
    if (!View(info, &p, &len)) {
      ThrowType(env, "outbound(buf, off, len, now)");
      return env.Undefined();
    }
    return Napi::Number::New(env, s_->Outbound(p, len, Now(info, 3)));
  }

  Napi::Value Expire(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(s_->Expire(Now(info, 0), ~size_t(0))));
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r)) {
      ThrowType(env, "counters(out: Float64Array)");
      return env.Undefined();
    }
    return Napi::Number::New(env, double(FillPolicyCounters(*s_, reinterpret_cast<double*>(r.data), r.bytes / 8)));
  }

  std::unique_ptr<policy::Stage> s_;
};

}  // namespace

void InitPolicyCore(Napi::Env env, Napi::Object exports) { exports.Set("PolicyCore", PolicyCore::Define(env)); }

}  // namespace vpcgw
