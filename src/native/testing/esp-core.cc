// Test-only: one direction of an ESP SA (../core/esp.h) outside any data plane, for the differential
// tests against src/esp (test/unit/native/core/esp.test.ts) and the micro benchmarks
// (bench/micro/esp.mjs, bench/micro/dataplane.mjs). Built into vpcgw_native_test.node only.
#include <algorithm>
#include <memory>
#include <string>

#include "../core/esp.h"
#include "../engine/parse-args.h"
#include "../napi-util.h"

namespace vpcgw {
namespace {

// new EspCore(params like installSa) ; encap(buf, off, len, limit, span: Uint32Array(3)) -> drop;
// decap(buf, off, len, span) -> drop; counters(out: Float64Array(4 + 15)); encapBatch/decapBatch for bench.
class EspCore : public Napi::ObjectWrap<EspCore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EspCore",
                       {
                           InstanceMethod<&EspCore::Encap>("encap"),
                           InstanceMethod<&EspCore::Decap>("decap"),
                           InstanceMethod<&EspCore::EncapBatch>("encapBatch"),
                           InstanceMethod<&EspCore::DecapBatch>("decapBatch"),
                           InstanceMethod<&EspCore::Counters>("counters"),
                       });
  }

  explicit EspCore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EspCore>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "EspCore(params)");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    esp::SaConfig c;
    if (!ParseSaConfig(env, o, &c)) {
      ThrowType(env, "EspCore: bad keys or selectors");
      return;
    }
    const char* err = nullptr;
    sa_.reset(esp::Sa::Create(c, &err));
    if (!sa_) Napi::Error::New(env, std::string("EspCore: ") + err).ThrowAsJavaScriptException();
  }

 private:
  Napi::Value Encap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[4], &s) || s.bytes < 12) {
      ThrowType(env, "encap(buf, off, len, limit, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    size_t limit = std::min<size_t>(info[3].As<Napi::Number>().Uint32Value(), b.bytes);
    if (off + len > limit) return Napi::Number::New(env, esp::kNoRoom);
    esp::Span span;
    int r = sa_->Encap(b.data, off, len, limit, &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    so[2] = uint32_t(span.event);
    return Napi::Number::New(env, r);
  }

  Napi::Value Decap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 4 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[3], &s) || s.bytes < 12) {
      ThrowType(env, "decap(buf, off, len, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    if (off + len > b.bytes) return Napi::Number::New(env, esp::kShort);
    esp::Span span;
    int r = sa_->Decap(b.data, off, len, &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    so[2] = uint32_t(span.event);
    return Napi::Number::New(env, r);
  }

  // encapBatch(buf, off: Uint32Array, len: Uint32Array, count, slotSize) -> packets sealed
  // (in place; off/len are updated to the ESP packets)
  Napi::Value EncapBatch(const Napi::CallbackInfo& info) { return Batch(info, true); }
  Napi::Value DecapBatch(const Napi::CallbackInfo& info) { return Batch(info, false); }

  Napi::Value Batch(const Napi::CallbackInfo& info, bool enc) {
    Napi::Env env = info.Env();
    RawView b, o, l;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[1], &o) || !GetRaw(env, info[2], &l)) {
      ThrowType(env, "encapBatch/decapBatch(buf, off, len, count, slotSize)");
      return env.Undefined();
    }
    uint32_t* off = reinterpret_cast<uint32_t*>(o.data);
    uint32_t* len = reinterpret_cast<uint32_t*>(l.data);
    uint32_t count = std::min<uint32_t>(info[3].As<Napi::Number>().Uint32Value(), uint32_t(std::min(o.bytes, l.bytes) / 4));
    size_t slot = info[4].As<Napi::Number>().Uint32Value();
    uint32_t ok = 0;
    for (uint32_t i = 0; i < count; i++) {
      size_t end = (off[i] / slot + 1) * slot;
      if (end > b.bytes || off[i] + size_t(len[i]) > end) continue;
      esp::Span span;
      int r = enc ? sa_->Encap(b.data, off[i], len[i], end, &span) : sa_->Decap(b.data, off[i], len[i], &span);
      if (r != esp::kNone) continue;
      off[i] = uint32_t(span.off);
      len[i] = uint32_t(span.len);
      ok++;
    }
    return Napi::Number::New(env, ok);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r) || r.bytes < (4 + esp::kDropCount) * sizeof(double)) {
      ThrowType(env, "counters(out)");
      return env.Undefined();
    }
    double* out = reinterpret_cast<double*>(r.data);
    out[0] = sa_->bytes;
    out[1] = sa_->packets;
    out[2] = sa_->seq();
    out[3] = (sa_->softReached ? 1 : 0) | (sa_->hardReached ? 2 : 0) | (sa_->seqExhausted ? 4 : 0);
    for (int i = 0; i < esp::kDropCount; i++) out[4 + i] = sa_->drops[i];
    return env.Undefined();
  }

  std::unique_ptr<esp::Sa> sa_;
};

}  // namespace

void InitEspCore(Napi::Env env, Napi::Object exports) { exports.Set("EspCore", EspCore::Define(env)); }

}  // namespace vpcgw
