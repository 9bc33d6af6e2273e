// N-API side of the policy stage (../core/policy.h), shared by the engine's bindings (bindings.cc:
// setPolicy, policyCounters) and the test-only stage (../testing/policy-core.cc): a DataPathPolicy
// object of src/vpcep/policy.ts into a policy::Config, and the stage's counters into a flat
// Float64Array (decoded by src/dataplane/native-policy.ts).
#pragma once

#include <napi.h>

#include <cstring>
#include <vector>

#include "../core/policy.h"
#include "../napi-util.h"

namespace vpcgw {

// Counter layout: drops by reason (7), flows, endpoint count, origin count, then per endpoint
// kPolicyEndpointStride doubles (id, flows, flowsCreated, packetsIn, bytesIn, packetsOut, bytesOut,
// drops by reason), then per origin with aclDenied > 0: origin, count.
constexpr size_t kPolicyCounterHead = policy::kDropCount + 3;
constexpr size_t kPolicyEndpointStride = 7 + policy::kDropCount;

// Fills out[0, cap) when the counters fit; returns the number of doubles they need either way.
inline size_t FillPolicyCounters(const policy::Stage& s, double* out, size_t cap) {
  size_t origins = 0;
  for (const auto& kv : s.aclDenied())
    if (kv.second > 0) origins++;
  size_t need = kPolicyCounterHead + s.endpointCount() * kPolicyEndpointStride + origins * 2;
  if (need > cap) return need;
  for (int i = 0; i < policy::kDropCount; i++) out[i] = s.drops()[i];
  out[policy::kDropCount] = s.flows();
  out[policy::kDropCount + 1] = double(s.endpointCount());
  out[policy::kDropCount + 2] = double(origins);
  double* o = out + kPolicyCounterHead;
  for (size_t i = 0; i < s.endpointCount(); i++, o += kPolicyEndpointStride) {
    const policy::EndpointCounters& c = s.endpointCounters(i);
    o[0] = c.id;
    o[1] = c.flows;
    o[2] = c.flowsCreated;
    o[3] = c.packetsIn;
    o[4] = c.bytesIn;
    o[5] = c.packetsOut;
    o[6] = c.bytesOut;
    for (int k = 0; k < policy::kDropCount; k++) o[7 + k] = c.drops[k];
  }
  for (const auto& kv : s.aclDenied()) {
    if (kv.second <= 0) continue;
    o[0] = kv.first;
    o[1] = kv.second;
    o += 2;
  }
  return need;
}

namespace policyargs {

inline bool Num(const Napi::Object& o, const char* k, double lo, double hi, double* out) {
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi)) return false;
  *out = d;
  return true;
}

inline bool Array(const Napi::Object& o, const char* k, Napi::Array* out) {
  Napi::Value v = o.Get(k);
  if (!v.IsArray()) return false;
  *out = v.As<Napi::Array>();
  return true;
}

inline bool Obj(const Napi::Array& a, uint32_t i, Napi::Object* out) {
  Napi::Value v = a.Get(i);
  if (!v.IsObject()) return false;
  *out = v.As<Napi::Object>();
  return true;
}

}  // namespace policyargs

// DataPathPolicy { endpoints, acls, limits } -> Config. False with *err naming what is wrong.
inline bool ParsePolicy(Napi::Env env, const Napi::Value& v, policy::Config* c, const char** err) {
  using namespace policyargs;
  constexpr double kU32 = 4294967295.0;
  double d = 0;
  if (!v.IsObject()) return (*err = "policy must be an object"), false;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array eps, acls;
  if (!Array(o, "endpoints", &eps) || !Array(o, "acls", &acls)) return (*err = "endpoints and acls must be arrays"), false;
  Napi::Value lv = o.Get("limits");
  if (!lv.IsObject()) return (*err = "limits must be an object"), false;
  Napi::Object l = lv.As<Napi::Object>();
  if (!Num(l, "maxFlows", 1, policy::kMaxFlows, &d) || d != double(uint32_t(d)))
    return (*err = "limits.maxFlows: an integer in 1..2^24"), false;
  c->limits.maxFlows = uint32_t(d);
  if (!Num(l, "tcpEstablishedMs", 0, 1e15, &c->limits.tcpEstablishedMs) ||
      !Num(l, "tcpTransitoryMs", 0, 1e15, &c->limits.tcpTransitoryMs) || !Num(l, "udpMs", 0, 1e15, &c->limits.udpMs))
    return (*err = "limits: timeouts in ms"), false;

  for (uint32_t i = 0; i < eps.Length(); i++) {
    Napi::Object e;
    if (!Obj(eps, i, &e)) return (*err = "endpoints[i] must be an object"), false;
    policy::EndpointRule r;
    if (!Num(e, "id", 0, kU32, &d)) return (*err = "endpoint id"), false;
    r.id = uint32_t(d);
    if (!Num(e, "address", 0, kU32, &d)) return (*err = "endpoint address"), false;
    r.address = uint32_t(d);
    r.open = e.Get("open").ToBoolean().Value();
    Napi::Array ports, origins, sources;
    if (!Array(e, "ports", &ports) || !Array(e, "origins", &origins) || !Array(e, "sources", &sources))
      return (*err = "endpoint ports, origins and sources must be arrays"), false;
    for (uint32_t k = 0; k < ports.Length(); k++) {
      Napi::Object p;
      policy::PortMap m;
      if (!Obj(ports, k, &p) || !Num(p, "protocol", 0, 255, &d) || (d != policy::kProtoTcp && d != policy::kProtoUdp))
        return (*err = "port map protocol must be 6 or 17"), false;
      m.protocol = uint8_t(d);
      if (!Num(p, "servicePort", 0, 65535, &d)) return (*err = "port map servicePort"), false;
      m.servicePort = uint16_t(d);
      if (!Num(p, "backendAddr", 0, kU32, &d)) return (*err = "port map backendAddr"), false;
      m.backendAddr = uint32_t(d);
      if (!Num(p, "backendPort", 0, 65535, &d)) return (*err = "port map backendPort"), false;
      m.backendPort = uint16_t(d);
      r.ports.push_back(m);
    }
    for (uint32_t k = 0; k < origins.Length(); k++) {
      Napi::Value x = origins.Get(k);
      if (!x.IsNumber()) return (*err = "endpoint origins must be numbers"), false;
      r.origins.push_back(x.As<Napi::Number>().Uint32Value());
    }
    for (uint32_t k = 0; k < sources.Length(); k++) {
      Napi::Object p;
      policy::Prefix4 s;
      if (!Obj(sources, k, &p) || !Num(p, "addr", 0, kU32, &d)) return (*err = "endpoint sources: { addr, len }"), false;
      s.addr = uint32_t(d);
      if (!Num(p, "len", 0, 32, &d)) return (*err = "endpoint source prefix length"), false;
      s.len = uint8_t(d);
      r.sources.push_back(s);
    }
    c->endpoints.push_back(std::move(r));
  }

  for (uint32_t i = 0; i < acls.Length(); i++) {
    Napi::Object a;
    Napi::Array rules;
    policy::OriginAcl x;
    if (!Obj(acls, i, &a) || !Num(a, "origin", 0, kU32, &d) || !Array(a, "rules", &rules))
      return (*err = "acls[i]: { origin, rules }"), false;
    x.origin = uint32_t(d);
    for (uint32_t k = 0; k < rules.Length(); k++) {
      Napi::Object ro;
      policy::AclRule r;
      if (!Obj(rules, k, &ro) || !Num(ro, "family", 4, 6, &d) || (d != 4 && d != 6))
        return (*err = "acl rule family must be 4 or 6"), false;
      r.family = uint8_t(d);
      size_t alen = r.family == 4 ? 4 : 16;
      RawView av;
      if (!GetRaw(env, ro.Get("addr"), &av) || av.bytes < alen) return (*err = "acl rule addr: 4 or 16 bytes"), false;
      memcpy(r.addr, av.data, alen);
      if (!Num(ro, "len", 0, double(alen * 8), &d)) return (*err = "acl rule prefix length"), false;
      r.len = uint8_t(d);
      if (!Num(ro, "protocol", 0, 255, &d)) return (*err = "acl rule protocol"), false;
      r.protocol = uint8_t(d);
      double lo = 0, hi = 0;
      if (!Num(ro, "portLo", 0, 65535, &lo) || !Num(ro, "portHi", 0, 65535, &hi)) return (*err = "acl rule ports"), false;
      r.portLo = uint16_t(lo);
      r.portHi = uint16_t(hi);
      x.rules.push_back(r);
    }
    c->acls.push_back(std::move(x));
  }
  return true;
}

}  // namespace vpcgw
