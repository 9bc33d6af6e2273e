// Test-only: one OpenVPN data-channel session (../core/ovpn.h) outside any data plane, for the
// differential tests against src/ssl/data (test/unit/native/core/ovpn.test.ts) and the micro
// benchmark bench/micro/ssl-data.mjs. Built into vpcgw_native_test.node only.
#include <algorithm>
#include <memory>
#include <string>

#include "../core/ovpn.h"
#include "../napi-util.h"

namespace vpcgw {
namespace {

// new OvpnCore(peerId, replayBacktrackMs); setKey(keyId, cipher, encKey, encIv, decKey, decIv,
// initialSendPacketId); retireKey(keyId); setCompression(mode); compression();
// encrypt(buf, off, len, limit, nowMs, ping, span: Uint32Array(2)) -> Result;
// decrypt(buf, off, len, nowMs, span) -> Result; counters(out: Float64Array(6 + kResultCount))
class OvpnCore : public Napi::ObjectWrap<OvpnCore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "OvpnCore",
                       {
                           InstanceMethod<&OvpnCore::SetKey>("setKey"),
                           InstanceMethod<&OvpnCore::RetireKey>("retireKey"),
                           InstanceMethod<&OvpnCore::SetCompression>("setCompression"),
                           InstanceMethod<&OvpnCore::Compression>("compression"),
                           InstanceMethod<&OvpnCore::Encrypt>("encrypt"),
                           InstanceMethod<&OvpnCore::Decrypt>("decrypt"),
                           InstanceMethod<&OvpnCore::Counters>("counters"),
                       });
  }

  explicit OvpnCore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OvpnCore>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "OvpnCore(peerId, replayBacktrackMs?)");
      return;
    }
    double bt = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 15000;
    s_.reset(new ovpn::Session(info[0].As<Napi::Number>().Uint32Value() & 0xffffff, bt));
  }

 private:
  Napi::Value SetKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView ek, ei, dk, di;
    if (info.Length() < 6 || !GetRaw(env, info[2], &ek) || !GetRaw(env, info[3], &ei) || !GetRaw(env, info[4], &dk) ||
        !GetRaw(env, info[5], &di) || ei.bytes < ovpn::kImplicitIv || di.bytes < ovpn::kImplicitIv) {
      ThrowType(env, "setKey(keyId, cipher, encKey, encIv, decKey, decIv, initialSendPacketId?)");
      return env.Undefined();
    }
    ovpn::KeyConfig k;
    k.keyId = info[0].As<Napi::Number>().Int32Value();
    k.cipher = info[1].As<Napi::Number>().Int32Value();
    k.encKey = ek.data;
    k.encKeyLen = ek.bytes;
    k.encIv = ei.data;
    k.decKey = dk.data;
    k.decKeyLen = dk.bytes;
    k.decIv = di.data;
    if (info.Length() > 6 && info[6].IsNumber()) k.initialSendPacketId = info[6].As<Napi::Number>().Uint32Value();
    const char* err = nullptr;
    if (!s_->InstallKey(k, &err)) Napi::Error::New(env, std::string("setKey: ") + err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value RetireKey(const Napi::CallbackInfo& info) {
    s_->RetireKey(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value SetCompression(const Napi::CallbackInfo& info) {
    s_->setCompression(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value Compression(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), s_->compression()); }

  Napi::Value Encrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 7 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[6], &s) || s.bytes < 8) {
      ThrowType(env, "encrypt(buf, off, len, limit, nowMs, ping, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    size_t limit = std::min<size_t>(info[3].As<Napi::Number>().Uint32Value(), b.bytes);
    if (off + len > limit) return Napi::Number::New(env, s_->Drop(ovpn::kTooBig));
    ovpn::Span span;
    int r = s_->Encrypt(b.data, off, len, limit, info[4].As<Napi::Number>().DoubleValue(), info[5].ToBoolean().Value(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  Napi::Value Decrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[4], &s) || s.bytes < 8) {
      ThrowType(env, "decrypt(buf, off, len, nowMs, span)");
      return env.Undefined();
    }
    size_t off = info[1].As<Napi::Number>().Uint32Value(), len = info[2].As<Napi::Number>().Uint32Value();
    if (off + len > b.bytes) return Napi::Number::New(env, s_->Drop(ovpn::kShort));
    ovpn::Span span;
    int r = s_->Decrypt(b.data, off, len, info[3].As<Napi::Number>().DoubleValue(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r) || r.bytes < (6 + ovpn::kResultCount) * sizeof(double)) {
      ThrowType(env, "counters(out)");
      return env.Undefined();
    }
    double* o = reinterpret_cast<double*>(r.data);
    const ovpn::Counters& c = s_->counters;
    o[0] = c.rxPackets;
    o[1] = c.rxBytes;
    o[2] = c.txPackets;
    o[3] = c.txBytes;
    o[4] = c.pingsIn;
    o[5] = c.pingsOut;
    for (int i = 0; i < ovpn::kResultCount; i++) o[6 + i] = c.drops[i];
    return env.Undefined();
  }

  std::unique_ptr<ovpn::Session> s_;
};

}  // namespace

void InitOvpnCore(Napi::Env env, Napi::Object exports) {
  exports.Set("OvpnCore", OvpnCore::Define(env));
  exports.Set("ovpnAbi", Napi::Number::New(env, 1));
}

}  // namespace vpcgw
