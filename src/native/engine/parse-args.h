// N-API argument parsing shared by the engine's bindings (bindings.cc: installSa) and the test-only
// ESP core (../testing/esp-core.cc): the SA parameter object of src/dataplane/native-data-plane.ts
// (NativeSaParams) into an esp::SaConfig.
#pragma once

#include <napi.h>

#include <cstring>
#include <vector>

#include "../core/esp.h"
#include "../napi-util.h"

namespace vpcgw {

// Traffic selectors packed as 18 bytes per prefix (family, length, 16 address bytes).
inline bool ParsePrefixes(const Napi::Value& v, std::vector<esp::Prefix>* out) {
  RawView r;
  if (!v.IsObject() || !GetRaw(v.Env(), v, &r) || r.bytes % 18 != 0) return false;
  for (size_t i = 0; i < r.bytes; i += 18) {
    esp::Prefix p;
    p.family = r.data[i];
    p.len = r.data[i + 1];
    if ((p.family != 4 && p.family != 6) || p.len > (p.family == 4 ? 32 : 128)) return false;
    memcpy(p.bytes, r.data + i + 2, 16);
    out->push_back(p);
  }
  return true;
}

inline double NumberField(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
}

// { inbound, spi, encr, encrKeyBits, integ, encrKey, integKey, replayWindow, esn, initialSeq,
//   initialSeqHi, localTs, remoteTs, softBytes, hardBytes, softPackets, hardPackets }. The key pointers in *c point into
// the JS buffers: valid during the call only (esp::Sa::Create copies them). False on bad keys or
// selectors.
inline bool ParseSaConfig(Napi::Env env, const Napi::Object& o, esp::SaConfig* c) {
  c->inbound = o.Get("inbound").ToBoolean().Value();
  c->spi = uint32_t(NumberField(o, "spi"));
  c->encr = int(NumberField(o, "encr"));
  c->encrKeyBits = int(NumberField(o, "encrKeyBits"));
  c->integ = int(NumberField(o, "integ"));
  RawView ek, ik;
  if (!GetRaw(env, o.Get("encrKey"), &ek) || !GetRaw(env, o.Get("integKey"), &ik) ||
      !ParsePrefixes(o.Get("localTs"), &c->localTs) || !ParsePrefixes(o.Get("remoteTs"), &c->remoteTs))
    return false;
  c->encrKey = ek.data;
  c->encrKeyLen = ek.bytes;
  c->integKey = ik.data;
  c->integKeyLen = ik.bytes;
  c->replayWindow = o.Get("replayWindow").IsNumber() ? uint32_t(NumberField(o, "replayWindow")) : 1024;
  c->esn = o.Get("esn").ToBoolean().Value();
  c->initialSeq = uint32_t(NumberField(o, "initialSeq"));
  c->initialSeqHi = uint32_t(NumberField(o, "initialSeqHi"));
  c->softBytes = NumberField(o, "softBytes");
  c->hardBytes = NumberField(o, "hardBytes");
  c->softPackets = NumberField(o, "softPackets");
  c->hardPackets = NumberField(o, "hardPackets");
  return true;
}

}  // namespace vpcgw
