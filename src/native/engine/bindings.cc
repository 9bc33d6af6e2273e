// N-API face of the data-plane engine (engine.h): `DataPlaneHandle`, the object
// src/dataplane/native-data-plane.ts drives. Each method checks and unpacks its JS arguments and
// calls the engine; nothing here runs per packet. Argument layouts are documented per method and
// typed in NativeDataPlaneHandle (src/dataplane/native-data-plane.ts).
#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>

#include "../core/ovpn.h"
#include "../napi-util.h"
#include "engine.h"
#include "parse-args.h"
#include "parse-policy.h"

namespace vpcgw {
namespace {

bool ValidPrefix(int family, unsigned len) { return (family == 4 || family == 6) && len <= (family == 4 ? 32u : 128u); }

class DataPlaneHandle : public Napi::ObjectWrap<DataPlaneHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DataPlaneHandle",
                       {
                           InstanceMethod<&DataPlaneHandle::AttachTun>("attachTun"),
                           InstanceMethod<&DataPlaneHandle::AttachUdp>("attachUdp"),
                           InstanceMethod<&DataPlaneHandle::Start>("start"),
                           InstanceMethod<&DataPlaneHandle::InstallSa>("installSa"),
                           InstanceMethod<&DataPlaneHandle::RemoveSa>("removeSa"),
                           InstanceMethod<&DataPlaneHandle::SaCounters>("saCounters"),
                           InstanceMethod<&DataPlaneHandle::SaRemote>("saRemote"),
                           InstanceMethod<&DataPlaneHandle::SetSaRemote>("setSaRemote"),
                           InstanceMethod<&DataPlaneHandle::AddRoute>("addRoute"),
                           InstanceMethod<&DataPlaneHandle::RemoveRoute>("removeRoute"),
                           InstanceMethod<&DataPlaneHandle::LookupRoute>("lookupRoute"),
                           InstanceMethod<&DataPlaneHandle::SendControl>("sendControl"),
                           InstanceMethod<&DataPlaneHandle::WriteTun>("writeTun"),
                           InstanceMethod<&DataPlaneHandle::FlushTun>("flushTun"),
                           InstanceMethod<&DataPlaneHandle::SetOptions>("setOptions"),
                           InstanceMethod<&DataPlaneHandle::Close>("close"),
                           InstanceMethod<&DataPlaneHandle::AttachSsl>("attachSsl"),
                           InstanceMethod<&DataPlaneHandle::DetachSsl>("detachSsl"),
                           InstanceMethod<&DataPlaneHandle::SetSslHandler>("setSslHandler"),
                           InstanceMethod<&DataPlaneHandle::InstallSslSession>("installSslSession"),
                           InstanceMethod<&DataPlaneHandle::UpdateSslSession>("updateSslSession"),
                           InstanceMethod<&DataPlaneHandle::SetSslKey>("setSslKey"),
                           InstanceMethod<&DataPlaneHandle::RetireSslKey>("retireSslKey"),
                           InstanceMethod<&DataPlaneHandle::RemoveSslSession>("removeSslSession"),
                           InstanceMethod<&DataPlaneHandle::AddSslRoute>("addSslRoute"),
                           InstanceMethod<&DataPlaneHandle::RemoveSslRoute>("removeSslRoute"),
                           InstanceMethod<&DataPlaneHandle::SslCounters>("sslCounters"),
                           InstanceMethod<&DataPlaneHandle::SslSend>("sslSend"),
                           InstanceMethod<&DataPlaneHandle::SslDecrypt>("sslDecrypt"),
                           InstanceMethod<&DataPlaneHandle::SetSslFloatCheck>("setSslFloatCheck"),
                           InstanceMethod<&DataPlaneHandle::SslTcpOpen>("sslTcpOpen"),
                           InstanceMethod<&DataPlaneHandle::SslTcpBind>("sslTcpBind"),
                           InstanceMethod<&DataPlaneHandle::SslTcpChunk>("sslTcpChunk"),
                           InstanceMethod<&DataPlaneHandle::SslTcpClose>("sslTcpClose"),
                           InstanceMethod<&DataPlaneHandle::SslTcpFlush>("sslTcpFlush"),
                           InstanceMethod<&DataPlaneHandle::SetSslTcpOutput>("setSslTcpOutput"),
                           InstanceMethod<&DataPlaneHandle::SslTcpOutput>("sslTcpOutput"),
                           InstanceMethod<&DataPlaneHandle::SetPolicy>("setPolicy"),
                           InstanceMethod<&DataPlaneHandle::PolicyCounters>("policyCounters"),
                           InstanceMethod<&DataPlaneHandle::ExpirePolicy>("expirePolicy"),
                       });
  }

  // new DataPlaneHandle({ stats, ctlBuf, ctlMeta, ctlAddr, sinkBuf, sinkMeta, events, maxPacket })
  explicit DataPlaneHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlaneHandle>(info), e_(this) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "DataPlaneHandle(options)");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    JsBuffers& js = e_.js();
    if (!js.stats.Pin(env, o.Get("stats")) || js.stats.count < kStatCount || !js.ctlBuf.Pin(env, o.Get("ctlBuf")) ||
        !js.ctlMeta.Pin(env, o.Get("ctlMeta")) || !js.ctlAddr.Pin(env, o.Get("ctlAddr")) ||
        !js.sinkBuf.Pin(env, o.Get("sinkBuf")) || !js.sinkMeta.Pin(env, o.Get("sinkMeta")) ||
        !js.events.Pin(env, o.Get("events")) || !o.Get("maxPacket").IsNumber()) {
      ThrowType(env, "DataPlaneHandle: bad options");
      return;
    }
    if (!e_.Configure(o.Get("maxPacket").As<Napi::Number>().Uint32Value())) {
      ThrowType(env, "DataPlaneHandle: bad geometry");
      return;
    }
  }

 private:
  // ------------------------------------------------------------------ setup

  // attachTun(fd, vnetHdr: boolean, owns: boolean)
  Napi::Value AttachTun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (e_.closed() || e_.hasTun() || info.Length() < 3 || !info[0].IsNumber()) {
      ThrowType(env, "attachTun(fd, vnetHdr, owns) once, before start");
      return env.Undefined();
    }
    e_.AttachTun(info[0].As<Napi::Number>().Int32Value(), info[1].ToBoolean().Value(), info[2].ToBoolean().Value());
    return env.Undefined();
  }

  Napi::Value Attach(Napi::Env env, int fd, bool ssl) {
    const char* syscall = "";
    int err = 0;
    int index = e_.AttachUdp(env, fd, ssl, &syscall, &err);
    if (index < 0) {
      ThrowErrno(env, syscall, err);
      return env.Undefined();
    }
    return Napi::Number::New(env, index);
  }

  // attachUdp(fd) -> bind index
  Napi::Value AttachUdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (e_.closed() || e_.started() || info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "attachUdp(fd) before start");
      return env.Undefined();
    }
    return Attach(env, info[0].As<Napi::Number>().Int32Value(), false);
  }

  // setOptions(gso, gro, rxModerationUs): offload switches (gro needs a vnet-header TUN) and receive
  // moderation (0 off; before start)
  Napi::Value SetOptions(const Napi::CallbackInfo& info) {
    uint32_t modUs = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
    e_.SetOptions(info.Length() > 0 && info[0].ToBoolean().Value(), info.Length() > 1 && info[1].ToBoolean().Value(), modUs);
    return info.Env().Undefined();
  }

  // start(cb(ctlCount, sinkCount, eventCount))
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (e_.closed() || e_.started() || info.Length() < 1 || !info[0].IsFunction()) {
      ThrowType(env, "start(cb) once");
      return env.Undefined();
    }
    int rc = e_.Start(env, info[0].As<Napi::Function>());
    if (rc != 0) ThrowErrno(env, "uv_poll_start", -rc);
    return env.Undefined();
  }

  // ------------------------------------------------------------------ SAs and routes

  // installSa({ inbound, spi, encr, encrKeyBits, integ, encrKey, integKey, replayWindow, esn, initialSeq, initialSeqHi,
  //   bind, remoteFamily, remoteAddr(16), remotePort, localFamily?, localAddr(16)?, localTs, remoteTs, softBytes, hardBytes,
  //   softPackets, hardPackets, seqCell?, origin? }) -> boolean (the SA has a usable socket)
  Napi::Value InstallSa(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "installSa(params)");
      return env.Undefined();
    }
    if (e_.closed()) return env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    esp::SaConfig c;
    RawView ra;
    if (!GetRaw(env, o.Get("remoteAddr"), &ra) || ra.bytes < 16 || !ParseSaConfig(env, o, &c)) {
      ThrowType(env, "installSa: bad keys, address or selectors");
      return env.Undefined();
    }
    const char* err = nullptr;
    esp::Sa* sa = esp::Sa::Create(c, &err);
    if (!sa) {
      Napi::Error::New(env, std::string("installSa: ") + err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto out = std::make_unique<OutSa>();
    out->sa.reset(sa);
    if (c.inbound) out->origin = uint32_t(NumberField(o, "origin"));  // into the policy stage
    int bind = int(NumberField(o, "bind"));
    sa->bindIndex = bind >= 0 ? bind : -1;
    sa->remoteFamily = uint8_t(NumberField(o, "remoteFamily"));
    memcpy(sa->remoteAddr, ra.data, 16);
    sa->remotePort = uint16_t(NumberField(o, "remotePort"));
    // our outer address: on a wildcard socket the SA's datagrams leave from it (../io/pktinfo.h);
    // all zeros (the SA was negotiated on a wildcard address) leaves it to the reply table
    RawView la;
    static const uint8_t kZero16[16] = {0};
    uint8_t lf = uint8_t(NumberField(o, "localFamily"));
    if ((lf == 4 || lf == 6) && GetRaw(env, o.Get("localAddr"), &la) && la.bytes >= 16 &&
        memcmp(la.data, kZero16, 16) != 0) {
      out->src.family = lf;
      memcpy(out->src.addr, la.data, 16);
    }
    // multi-queue: an outbound SA shared by several queues takes its sequence numbers from one
    // 8-aligned 8-byte cell of shared memory (optional `seqCell`, a BigUint64Array view)
    Napi::Value cell = o.Get("seqCell");
    RawView cv;
    if (!c.inbound && cell.IsObject() && GetRaw(env, cell, &cv) && cv.bytes >= 8 &&
        (reinterpret_cast<uintptr_t>(cv.data) & 7) == 0) {
      sa->seqCell = reinterpret_cast<uint64_t*>(cv.data);
      out->seqRef = Napi::Persistent(cell.As<Napi::Object>());
    }
    return Napi::Boolean::New(env, e_.InstallSa(std::move(out)));
  }

  // removeSa(spi, inbound) -> boolean
  Napi::Value RemoveSa(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), e_.RemoveSa(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value()));
  }

  // saCounters(spi, inbound, out: Float64Array(4 + 15)) -> boolean; out = bytes, packets, seq, 0, drops...
  Napi::Value SaCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 3 || !GetRaw(env, info[2], &r) || r.bytes < (4 + esp::kDropCount) * sizeof(double)) {
      ThrowType(env, "saCounters(spi, inbound, out)");
      return env.Undefined();
    }
    const esp::Sa* sa = e_.FindSa(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value());
    if (!sa) return Napi::Boolean::New(env, false);
    double* out = reinterpret_cast<double*>(r.data);
    out[0] = sa->bytes;
    out[1] = sa->packets;
    out[2] = sa->seq();
    out[3] = 0;
    for (int i = 0; i < esp::kDropCount; i++) out[4 + i] = sa->drops[i];
    return Napi::Boolean::New(env, true);
  }

  // saRemote(spi, inbound, addrOut(16)) -> family * 65536 + port, or -1 (no such SA)
  Napi::Value SaRemote(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 3 || !GetRaw(env, info[2], &r) || r.bytes < 16) {
      ThrowType(env, "saRemote(spi, inbound, addrOut)");
      return env.Undefined();
    }
    const esp::Sa* sa = e_.FindSa(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value());
    if (!sa) return Napi::Number::New(env, -1);
    memcpy(r.data, sa->remoteAddr, 16);
    return Napi::Number::New(env, double(sa->remoteFamily) * 65536 + sa->remotePort);
  }

  // setSaRemote(spi, inbound, family, addr(16), port) -> boolean
  Napi::Value SetSaRemote(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 5 || !GetRaw(env, info[3], &a) || a.bytes < 16) {
      ThrowType(env, "setSaRemote(spi, inbound, family, addr, port)");
      return env.Undefined();
    }
    if (e_.closed()) return Napi::Boolean::New(env, false);
    bool ok = e_.SetSaRemote(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value(),
                             uint8_t(info[2].As<Napi::Number>().Uint32Value()), a.data,
                             uint16_t(info[4].As<Napi::Number>().Uint32Value()));
    return Napi::Boolean::New(env, ok);
  }

  // addRoute(family, addr(16), prefixLen, spi, sink)
  Napi::Value AddRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 5 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "addRoute(family, addr, len, spi, sink)");
      return env.Undefined();
    }
    if (e_.closed()) return env.Undefined();
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if (!ValidPrefix(fam, len)) {
      ThrowType(env, "addRoute: bad prefix");
      return env.Undefined();
    }
    RouteTarget t;
    t.spi = info[3].As<Napi::Number>().Uint32Value();
    t.sink = info[4].As<Napi::Number>().Int32Value();
    e_.SetRoute(fam, a.data, len, t);
    return env.Undefined();
  }

  // removeRoute(family, addr, prefixLen, onlySink) -> boolean
  Napi::Value RemoveRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 4 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "removeRoute(family, addr, len, onlySink)");
      return env.Undefined();
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if (!ValidPrefix(fam, len)) return Napi::Boolean::New(env, false);
    const RouteKind sink = RouteKind::kSink;
    return Napi::Boolean::New(env, e_.RemoveRoute(fam, a.data, len, info[3].ToBoolean().Value() ? &sink : nullptr));
  }

  // lookupRoute(family, addr) -> [spi, sink, ssl] | null (tests)
  Napi::Value LookupRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 2 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "lookupRoute(family, addr)");
      return env.Undefined();
    }
    const RouteTarget* t = e_.LookupRoute(info[0].As<Napi::Number>().Int32Value() == 4 ? 4 : 6, a.data);
    if (!t) return env.Null();
    Napi::Array r = Napi::Array::New(env, 3);
    r.Set(0u, Napi::Number::New(env, t->spi));
    r.Set(1u, Napi::Number::New(env, t->sink));
    r.Set(2u, Napi::Number::New(env, t->ssl));
    return r;
  }

  // ------------------------------------------------------------------ JS -> wire / TUN

  // sendControl(bind, data, family, addr(16), port, marker = true) -> boolean; prepends the non-ESP marker unless marker is false
  Napi::Value SendControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView d, a;
    if (info.Length() < 5 || !GetRaw(env, info[1], &d) || !GetRaw(env, info[3], &a) || a.bytes < 16) {
      ThrowType(env, "sendControl(bind, data, family, addr, port)");
      return env.Undefined();
    }
    // a sixth argument false: no non-ESP marker (a NAT-keepalive, RFC 3948 §2.3)
    bool marker = info.Length() < 6 || info[5].ToBoolean().Value();
    return Napi::Boolean::New(
        env, e_.SendControl(info[0].As<Napi::Number>().Int32Value(), uint8_t(info[2].As<Napi::Number>().Uint32Value()),
                            a.data, uint16_t(info[4].As<Napi::Number>().Uint32Value()), d.data, d.bytes, marker));
  }

  // writeTun(buf, off, len, origin?): queues a copy (after the policy stage's inbound check for
  // origin, default 0) -> false when not queued; written when the queue fills or at flushTun()
  Napi::Value WriteTun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b;
    if (info.Length() < 3 || !GetRaw(env, info[0], &b)) {
      ThrowType(env, "writeTun(buf, off, len)");
      return env.Undefined();
    }
    uint32_t off = info[1].As<Napi::Number>().Uint32Value();
    uint32_t len = info[2].As<Napi::Number>().Uint32Value();
    if (e_.closed() || !e_.hasTun()) return Napi::Boolean::New(env, false);
    if (len == 0 || len > e_.maxPacket() || uint64_t(off) + len > b.bytes) {
      e_.CountDrop(esp::kNoRoom);
      return Napi::Boolean::New(env, false);
    }
    uint32_t origin = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0;
    return Napi::Boolean::New(env, e_.QueueTunWrite(b.data + off, len, origin));
  }

  Napi::Value FlushTun(const Napi::CallbackInfo& info) {
    if (!e_.closed()) e_.FlushJsTun();
    return info.Env().Undefined();
  }

  // ------------------------------------------------------------------ SSL VPN (OpenVPN data channel)

  // attachSsl(fd) -> bind index; may be called after start (polling starts at once)
  Napi::Value AttachSsl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (e_.closed() || info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "attachSsl(fd) before close");
      return env.Undefined();
    }
    return Attach(env, info[0].As<Napi::Number>().Int32Value(), true);
  }

  // detachSsl(index): stops polling the socket (the caller closes it afterwards); sessions on it
  // then drop kNoBind until they are removed.
  Napi::Value DetachSsl(const Napi::CallbackInfo& info) {
    int bi = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    return Napi::Boolean::New(info.Env(), e_.DetachSsl(bi));
  }

  // setSslHandler({ buf, meta, addr }, cb(count)): where datagrams and plaintext for JS go
  Napi::Value SetSslHandler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      ThrowType(env, "setSslHandler({ buf, meta, addr }, cb)");
      return env.Undefined();
    }
    Napi::Object o = info[0].As<Napi::Object>();
    JsBuffers& js = e_.js();
    js.sslBuf.Release();
    js.sslMeta.Release();
    js.sslAddr.Release();
    if (!js.sslBuf.Pin(env, o.Get("buf")) || !js.sslMeta.Pin(env, o.Get("meta")) || !js.sslAddr.Pin(env, o.Get("addr"))) {
      ThrowType(env, "setSslHandler: bad buffers");
      return env.Undefined();
    }
    e_.SetSslCallback(info[1].As<Napi::Function>());
    return env.Undefined();
  }

  // installSslSession(peerId, bind, family, addr(16), port, compression, clientNet(4), clientLen,
  //   serverAddr(4), origin?) -> boolean (remote usable); replaces a session with the same peer-id
  Napi::Value InstallSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a, net, srv;
    if (info.Length() < 9 || !info[0].IsNumber() || !GetRaw(env, info[3], &a) || a.bytes < 16 ||
        !GetRaw(env, info[6], &net) || net.bytes < 4 || !GetRaw(env, info[8], &srv) || srv.bytes < 4) {
      ThrowType(env, "installSslSession(peerId, bind, family, addr, port, comp, clientNet, clientLen, serverAddr)");
      return env.Undefined();
    }
    if (e_.closed()) return Napi::Boolean::New(env, false);
    uint32_t peerId = info[0].As<Napi::Number>().Uint32Value();
    if (peerId > 0xffffff) {
      ThrowType(env, "installSslSession: peer-id is 24 bits");
      return env.Undefined();
    }
    auto p = std::make_unique<SslPeer>();
    p->s.reset(new ovpn::Session(peerId));
    p->s->setCompression(info[5].As<Napi::Number>().Int32Value());
    memcpy(p->clientNet, net.data, 4);
    p->clientLen = uint8_t(std::min<uint32_t>(32, info[7].As<Napi::Number>().Uint32Value()));
    memcpy(p->serverAddr, srv.data, 4);
    if (info.Length() > 9 && info[9].IsNumber()) p->origin = info[9].As<Napi::Number>().Uint32Value();
    bool ok = e_.SetPeerRemote(p.get(), info[1].As<Napi::Number>().Int32Value(),
                               uint8_t(info[2].As<Napi::Number>().Uint32Value()), a.data,
                               uint16_t(info[4].As<Napi::Number>().Uint32Value()));
    e_.InstallSslPeer(peerId, std::move(p));
    return Napi::Boolean::New(env, ok);
  }

  // updateSslSession(peerId, what, ...): 'remote' (bind, family, addr, port) after a float,
  // 'vaddr' (addr(4) | null), 'comp' (mode), 'origin' (number) -> boolean
  Napi::Value UpdateSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString()) {
      ThrowType(env, "updateSslSession(peerId, what, ...)");
      return env.Undefined();
    }
    SslPeer* p = e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value());
    if (!p || e_.closed()) return Napi::Boolean::New(env, false);
    std::string what = info[1].As<Napi::String>().Utf8Value();
    if (what == "remote") {
      // remote: bind, family, addr, port are info[2..5]
      RawView ad;
      if (info.Length() < 6 || !GetRaw(env, info[4], &ad) || ad.bytes < 16) {
        ThrowType(env, "updateSslSession(peerId, 'remote', bind, family, addr, port)");
        return env.Undefined();
      }
      return Napi::Boolean::New(env, e_.SetPeerRemote(p, info[2].As<Napi::Number>().Int32Value(),
                                                      uint8_t(info[3].As<Napi::Number>().Uint32Value()), ad.data,
                                                      uint16_t(info[5].As<Napi::Number>().Uint32Value())));
    }
    if (what == "vaddr") {
      RawView a;
      if (info[2].IsNull() || info[2].IsUndefined()) {
        p->hasVaddr = false;
        return Napi::Boolean::New(env, true);
      }
      if (!GetRaw(env, info[2], &a) || a.bytes < 4) {
        ThrowType(env, "updateSslSession(peerId, 'vaddr', addr4 | null)");
        return env.Undefined();
      }
      memcpy(p->vaddr, a.data, 4);
      p->hasVaddr = true;
      return Napi::Boolean::New(env, true);
    }
    if (what == "comp") {
      p->s->setCompression(info[2].As<Napi::Number>().Int32Value());
      return Napi::Boolean::New(env, true);
    }
    if (what == "origin") {
      if (!info[2].IsNumber()) {
        ThrowType(env, "updateSslSession(peerId, 'origin', origin)");
        return env.Undefined();
      }
      p->origin = info[2].As<Napi::Number>().Uint32Value();
      return Napi::Boolean::New(env, true);
    }
    ThrowType(env, "updateSslSession: what is 'remote', 'vaddr', 'comp' or 'origin'");
    return env.Undefined();
  }

  // setSslKey(peerId, keyId, cipher, encKey, encIv, decKey, decIv, initialSendPacketId?, pidCell?) -> boolean
  // (false: no session)
  Napi::Value SetSslKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView ek, ei, dk, di;
    if (info.Length() < 7 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !GetRaw(env, info[3], &ek) ||
        !GetRaw(env, info[4], &ei) || !GetRaw(env, info[5], &dk) || !GetRaw(env, info[6], &di) ||
        ei.bytes < ovpn::kImplicitIv || di.bytes < ovpn::kImplicitIv) {
      ThrowType(env, "setSslKey(peerId, keyId, cipher, encKey, encIv(8), decKey, decIv(8))");
      return env.Undefined();
    }
    SslPeer* p = e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value());
    if (!p || e_.closed()) return Napi::Boolean::New(env, false);
    ovpn::KeyConfig k;
    k.keyId = info[1].As<Napi::Number>().Int32Value();
    k.cipher = info[2].As<Napi::Number>().Int32Value();
    k.encKey = ek.data;
    k.encKeyLen = ek.bytes;
    k.encIv = ei.data;
    k.decKey = dk.data;
    k.decKeyLen = dk.bytes;
    k.decIv = di.data;
    if (info.Length() > 7 && info[7].IsNumber()) k.initialSendPacketId = info[7].As<Napi::Number>().Uint32Value();
    // multi-queue: the key's packet-id cell shared with the other queues (a BigUint64Array view)
    RawView cv;
    bool hasCell = info.Length() > 8 && info[8].IsObject() && GetRaw(env, info[8], &cv) && cv.bytes >= 8 &&
                   (reinterpret_cast<uintptr_t>(cv.data) & 7) == 0;
    if (hasCell) k.pidCell = reinterpret_cast<uint64_t*>(cv.data);
    const char* err = nullptr;
    if (!p->s->InstallKey(k, &err)) {
      Napi::Error::New(env, std::string("setSslKey: ") + err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int slot = p->s->SlotOf(k.keyId);
    if (slot >= 0) {
      if (hasCell) p->pidRefs[slot] = Napi::Persistent(info[8].As<Napi::Object>());
      else p->pidRefs[slot].Reset();
    }
    return Napi::Boolean::New(env, true);
  }

  // setSslFloatCheck(on): see Engine::SetSslFloatCheck (multi-queue worker queues)
  Napi::Value SetSslFloatCheck(const Napi::CallbackInfo& info) {
    e_.SetSslFloatCheck(info.Length() > 0 && info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }

  // retireSslKey(peerId, keyId) -> boolean
  Napi::Value RetireSslKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    SslPeer* p =
        info.Length() > 1 && info[0].IsNumber() ? e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value()) : nullptr;
    if (!p || !info[1].IsNumber()) return Napi::Boolean::New(env, false);
    p->s->RetireKey(info[1].As<Napi::Number>().Int32Value());
    return Napi::Boolean::New(env, true);
  }

  // removeSslSession(peerId) -> boolean; its routes stay (packets then drop NO_SA) until removed
  Napi::Value RemoveSslSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, e_.RemoveSslPeer(info[0].As<Napi::Number>().Uint32Value()));
  }

  // addSslRoute(family, addr(16), prefixLen, peerId)
  Napi::Value AddSslRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 4 || !GetRaw(env, info[1], &a) || a.bytes < 16 || !info[3].IsNumber()) {
      ThrowType(env, "addSslRoute(family, addr, len, peerId)");
      return env.Undefined();
    }
    if (e_.closed()) return env.Undefined();
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    uint32_t peerId = info[3].As<Napi::Number>().Uint32Value();
    if (!ValidPrefix(fam, len) || peerId > 0xffffff) {
      ThrowType(env, "addSslRoute: bad prefix or peer-id");
      return env.Undefined();
    }
    RouteTarget t;
    t.ssl = int32_t(peerId);
    e_.SetRoute(fam, a.data, len, t);
    return env.Undefined();
  }

  // removeSslRoute(family, addr, prefixLen) -> boolean (only removes an SSL route)
  Napi::Value RemoveSslRoute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView a;
    if (info.Length() < 3 || !GetRaw(env, info[1], &a) || a.bytes < 16) {
      ThrowType(env, "removeSslRoute(family, addr, len)");
      return env.Undefined();
    }
    int fam = info[0].As<Napi::Number>().Int32Value();
    unsigned len = info[2].As<Napi::Number>().Uint32Value();
    if (!ValidPrefix(fam, len)) return Napi::Boolean::New(env, false);
    const RouteKind ssl = RouteKind::kSsl;
    return Napi::Boolean::New(env, e_.RemoveRoute(fam, a.data, len, &ssl));
  }

  // sslCounters(peerId, out: Float64Array(kSslCounterHead + kResultCount)) -> boolean
  //   rxPackets, rxBytes, txPackets, txBytes, pingsIn, pingsOut, msSinceRx, msSinceTx, sendKeyId,
  //   sendPacketId, compression, bind, drops by ovpn::Result...
  Napi::Value SslCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 2 || !info[0].IsNumber() || !GetRaw(env, info[1], &r) ||
        r.bytes < (kSslCounterHead + ovpn::kResultCount) * sizeof(double)) {
      ThrowType(env, "sslCounters(peerId, out)");
      return env.Undefined();
    }
    SslPeer* p = e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value());
    if (!p) return Napi::Boolean::New(env, false);
    double* o = reinterpret_cast<double*>(r.data);
    const ovpn::Counters& c = p->s->counters;
    double now = e_.NowMs();
    o[0] = c.rxPackets;
    o[1] = c.rxBytes;
    o[2] = c.txPackets;
    o[3] = c.txBytes;
    o[4] = c.pingsIn;
    o[5] = c.pingsOut;
    o[6] = p->s->lastRxMs > 0 ? now - p->s->lastRxMs : -1;
    o[7] = p->s->lastTxMs > 0 ? now - p->s->lastTxMs : -1;
    o[8] = p->s->sendKeyId();
    o[9] = p->s->sendPacketId();
    o[10] = p->s->compression();
    o[11] = p->bind;
    for (int i = 0; i < ovpn::kResultCount; i++) o[kSslCounterHead + i] = c.drops[i];
    return Napi::Boolean::New(env, true);
  }

  // sslSend(peerId, buf, off, len, ping) -> boolean: encrypts one payload (an IP packet from JS, or
  // the ping magic) and sends it at once from the session's socket
  Napi::Value SslSend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b;
    if (info.Length() < 5 || !info[0].IsNumber() || !GetRaw(env, info[1], &b)) {
      ThrowType(env, "sslSend(peerId, buf, off, len, ping)");
      return env.Undefined();
    }
    uint32_t off = info[2].As<Napi::Number>().Uint32Value();
    uint32_t len = info[3].As<Napi::Number>().Uint32Value();
    bool ping = info[4].ToBoolean().Value();
    SslPeer* p = e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value());
    if (!p || e_.closed()) return Napi::Boolean::New(env, false);
    if (len == 0 || len > e_.maxPacket() || uint64_t(off) + len > b.bytes) {
      p->s->Drop(ovpn::kTooBig);
      return Napi::Boolean::New(env, false);
    }
    bool ok = e_.SslSend(p, b.data + off, len, ping);
    if (e_.tcpOutPending()) e_.DeliverTcpOut(false);  // a TCP session: its frame goes to JS now
    return Napi::Boolean::New(env, ok);
  }

  // sslDecrypt(peerId, buf, off, len, span: Uint32Array(2)) -> ovpn::Result (-1: no session); in
  // place in the JS buffer. For JS decisions on packets the demux handed up (a float candidate).
  Napi::Value SslDecrypt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, s;
    if (info.Length() < 5 || !info[0].IsNumber() || !GetRaw(env, info[1], &b) || !GetRaw(env, info[4], &s) || s.bytes < 8) {
      ThrowType(env, "sslDecrypt(peerId, buf, off, len, span)");
      return env.Undefined();
    }
    uint32_t off = info[2].As<Napi::Number>().Uint32Value();
    uint32_t len = info[3].As<Napi::Number>().Uint32Value();
    SslPeer* p = e_.sslPeers().Find(info[0].As<Napi::Number>().Uint32Value());
    if (!p || e_.closed()) return Napi::Number::New(env, -1);
    if (uint64_t(off) + len > b.bytes) return Napi::Number::New(env, p->s->Drop(ovpn::kShort));
    ovpn::Span span;
    int r = p->s->Decrypt(b.data, off, len, e_.NowMs(), &span);
    uint32_t* so = reinterpret_cast<uint32_t*>(s.data);
    so[0] = uint32_t(span.off);
    so[1] = uint32_t(span.len);
    return Napi::Number::New(env, r);
  }

  // ------------------------------------------------------------------ SSL VPN over TCP

  // sslTcpOpen(stream, maxFrame?) -> boolean: a new TCP stream (the shell's connection id), no
  // session yet; longer packets (default 65535, what the length can say) break the stream
  Napi::Value SslTcpOpen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(env, "sslTcpOpen(stream)");
      return env.Undefined();
    }
    if (e_.closed()) return Napi::Boolean::New(env, false);
    size_t maxFrame = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : ovpn::kTcpMaxFrame;
    tcp_[info[0].As<Napi::Number>().Uint32Value()] = std::make_unique<TcpStream>(maxFrame);
    return Napi::Boolean::New(env, true);
  }

  // sslTcpBind(stream, peerId) -> boolean: the stream's data packets belong to that session
  Napi::Value SslTcpBind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
      ThrowType(env, "sslTcpBind(stream, peerId)");
      return env.Undefined();
    }
    auto it = tcp_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == tcp_.end()) return Napi::Boolean::New(env, false);
    it->second->peerId = info[1].As<Napi::Number>().Uint32Value();
    return Napi::Boolean::New(env, true);
  }

  // sslTcpChunk(stream, buf, off, len, list: Uint32Array, spill: Buffer) -> entries listed, or -1
  // (no such stream, or closed). One call per socket read; see Engine::SslTcpChunk.
  Napi::Value SslTcpChunk(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, l, sp;
    if (info.Length() < 6 || !info[0].IsNumber() || !GetRaw(env, info[1], &b) || !GetRaw(env, info[4], &l) ||
        l.bytes < (kTcpListHead + kTcpItemStride) * 4 || !GetRaw(env, info[5], &sp)) {
      ThrowType(env, "sslTcpChunk(stream, buf, off, len, list, spill)");
      return env.Undefined();
    }
    auto it = tcp_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == tcp_.end() || e_.closed()) return Napi::Number::New(env, -1);
    uint32_t off = info[2].As<Napi::Number>().Uint32Value();
    uint32_t len = info[3].As<Napi::Number>().Uint32Value();
    if (uint64_t(off) + len > b.bytes) {
      ThrowType(env, "sslTcpChunk: off/len outside buf");
      return env.Undefined();
    }
    size_t pos = off;
    uint32_t cap = uint32_t((l.bytes / 4 - kTcpListHead) / kTcpItemStride);
    TcpStream& t = *it->second;
    int n = e_.SslTcpChunk(&t.d, t.peerId, b.data, size_t(off) + len, &pos, reinterpret_cast<uint32_t*>(l.data), cap,
                           sp.data, sp.bytes, &t.asmQueued);
    return Napi::Number::New(env, n);
  }

  // setSslTcpOutput(cb): cb([peerId, Buffer, frames, ...]) receives each batch's output of the
  // sessions sslTcpOutput turned on (see Engine::DeliverTcpOut)
  Napi::Value SetSslTcpOutput(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      ThrowType(env, "setSslTcpOutput(cb)");
      return env.Undefined();
    }
    e_.SetSslTcpOutput(info[0].As<Napi::Function>());
    hasTcpOutput_ = true;
    return env.Undefined();
  }

  // sslTcpOutput(peerId, on) -> boolean: the session's send side is native and framed for its TCP
  // stream (on), or back to its UDP socket (false: no such session, or no output callback yet)
  Napi::Value SslTcpOutput(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber()) {
      ThrowType(env, "sslTcpOutput(peerId, on)");
      return env.Undefined();
    }
    if (!hasTcpOutput_ || e_.closed()) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, e_.SetSslTcp(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value()));
  }

  // sslTcpClose(stream) -> boolean: forgets the stream's framing state (after writing out the TUN
  // queue, which may point into its assembly buffers)
  Napi::Value SslTcpClose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
    auto it = tcp_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == tcp_.end()) return Napi::Boolean::New(env, false);
    if (it->second->asmQueued && !e_.closed()) e_.FlushSslTcp();
    tcp_.erase(it);
    return Napi::Boolean::New(env, true);
  }

  // sslTcpFlush(): writes the data packets sslTcpChunk queued to the TUN (the chunks they lie in may
  // be released afterwards)
  Napi::Value SslTcpFlush(const Napi::CallbackInfo& info) {
    if (!e_.closed()) e_.FlushSslTcp();
    return info.Env().Undefined();
  }

  // ------------------------------------------------------------------ policy stage

  // setPolicy(DataPathPolicy of src/vpcep/policy.ts): replaces the stage's rules
  Napi::Value SetPolicy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    policy::Config c;
    const char* err = "setPolicy(policy)";
    if (info.Length() < 1 || !ParsePolicy(env, info[0], &c, &err)) {
      ThrowType(env, err);
      return env.Undefined();
    }
    if (!e_.closed()) e_.SetPolicy(c);
    return env.Undefined();
  }

  // policyCounters(out: Float64Array) -> doubles needed (out filled when large enough; layout in
  // parse-policy.h)
  Napi::Value PolicyCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView r;
    if (info.Length() < 1 || !GetRaw(env, info[0], &r)) {
      ThrowType(env, "policyCounters(out)");
      return env.Undefined();
    }
    return Napi::Number::New(env, double(FillPolicyCounters(e_.policy(), reinterpret_cast<double*>(r.data), r.bytes / 8)));
  }

  // expirePolicy() -> flows removed (bounded per call; the JS timer calls it about once a second)
  Napi::Value ExpirePolicy(const Napi::CallbackInfo& info) {
    constexpr size_t kExpireWork = 65536;
    return Napi::Number::New(info.Env(), e_.closed() ? 0 : double(e_.ExpirePolicy(kExpireWork)));
  }

  // close(): stops polling, drops every SA, route and session; the object stays alive until libuv
  // has released the polls
  Napi::Value Close(const Napi::CallbackInfo& info) {
    e_.Close();
    return info.Env().Undefined();
  }

  // One TCP connection's framing state and the session its data packets belong to.
  struct TcpStream {
    explicit TcpStream(size_t maxFrame) : d(maxFrame) {}
    ovpn::TcpDeframer d;
    uint32_t peerId = 0xffffffffu;  // none yet (above any 24-bit peer-id)
    bool asmQueued = false;         // a packet in d's assembly buffer is queued for the TUN
  };

  Engine e_;
  std::unordered_map<uint32_t, std::unique_ptr<TcpStream>> tcp_;
  bool hasTcpOutput_ = false;
};

}  // namespace

void InitDataPlane(Napi::Env env, Napi::Object exports) {
  exports.Set("DataPlaneHandle", DataPlaneHandle::Define(env));
  // 2: control entries carry the local address they reached (kCtlStride 6, kCtlAddrStride 32)
  exports.Set("dataPlaneAbi", Napi::Number::New(env, 2));
  exports.Set("ovpnAbi", Napi::Number::New(env, 1));
}

}  // namespace vpcgw
