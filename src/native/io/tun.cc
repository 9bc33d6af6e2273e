// TUN device: open (IFF_TUN | IFF_NO_PI, nonblocking), uv_poll + read() loop straight into the
// slots of a JS-allocated PacketBatch, write() loop from batch slots. Counters live in a JS
// Float64Array that native code updates in place (zero allocation per wake-up).
//
// Read path:
//   1. uv_poll reports readable (or an error: counted, the poll is re-armed).
//   2. read() into slot n at n * slotSize + headroom until EAGAIN or the batch is full.
//   3. off[]/len[] are set for each slot; the JS callback runs once with the count.
//   4. A full batch is delivered and reading continues, at most kMaxRoundsPerWake batches per
//      wake-up so other handles get their turn (the poll is level-triggered and fires again).
//
// The device is opened by OpenTunDevice (tun-open.cc), which also opens the data-plane engine's
// vnet-header / multi-queue TUNs (openTun below); the engine's segmenting read path is in
// ../engine/engine.cc.
#include <unistd.h>

#include "../napi-util.h"
#include "tun-open.h"

namespace vpcgw {
namespace {

constexpr int kMaxRoundsPerWake = 8;

// Indices into the stats Float64Array (mirrored in src/native/loader.ts).
enum TunStat {
  kRxPackets = 0,
  kRxBytes,
  kTxPackets,
  kTxBytes,
  kReadBatches,
  kWriteErrors,
  kReadErrors,
  kPollErrors,
  kTunStatCount
};

class TunHandle : public Napi::ObjectWrap<TunHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TunHandle",
                       {
                           InstanceAccessor<&TunHandle::GetName>("name"),
                           InstanceAccessor<&TunHandle::GetFd>("fd"),
                           InstanceMethod<&TunHandle::Start>("start"),
                           InstanceMethod<&TunHandle::Write>("write"),
                           InstanceMethod<&TunHandle::Close>("close"),
                       });
  }

  // new TunHandle(name: string ('' = kernel-chosen), stats: Float64Array(kTunStatCount))
  explicit TunHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !stats_.Pin(env, info[1]) || stats_.count < kTunStatCount) {
      ThrowType(env, "TunHandle(name: string, stats: Float64Array)");
      return;
    }
    TunOpenResult t = OpenTunDevice(info[0].As<Napi::String>().Utf8Value(), false, false);
    if (t.fd < 0) {
      ThrowErrno(env, t.syscall, t.err);
      return;
    }
    fd_ = t.fd;
    name_ = std::move(t.name);
  }

  ~TunHandle() override {
    // Finalized without close(): not started (a started handle holds a strong self reference).
    if (fd_ >= 0) close(fd_);
  }

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // start(buf: Buffer, off: Uint32Array, len: Uint32Array, capacity, slotSize, headroom, readMax, cb)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      ThrowErrno(env, "start", EBADF);
      return env.Undefined();
    }
    if (poller_.Active()) {
      ThrowErrno(env, "start", EALREADY);
      return env.Undefined();
    }
    if (info.Length() < 8 || !info[7].IsFunction() || !buf_.Pin(env, info[0]) || !off_.Pin(env, info[1]) ||
        !len_.Pin(env, info[2])) {
      ThrowType(env, "start(buf, off, len, capacity, slotSize, headroom, readMax, cb)");
      return env.Undefined();
    }
    capacity_ = info[3].As<Napi::Number>().Uint32Value();
    slot_ = info[4].As<Napi::Number>().Uint32Value();
    headroom_ = info[5].As<Napi::Number>().Uint32Value();
    readMax_ = info[6].As<Napi::Number>().Uint32Value();
    if (capacity_ == 0 || capacity_ > off_.count || capacity_ > len_.count || headroom_ + readMax_ > slot_ ||
        static_cast<size_t>(capacity_) * slot_ > buf_.count) {
      ReleaseBatch();
      ThrowType(env, "start: batch geometry does not fit its buffers");
      return env.Undefined();
    }
    cb_ = Napi::Persistent(info[7].As<Napi::Function>());
    napi_async_init(env, Value(), Napi::String::New(env, "vpcgw:tun"), &async_);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = poller_.Start(loop, fd_, this, &TunHandle::OnPollThunk);
    if (rc != 0) {
      ReleaseBatch();
      ThrowErrno(env, "uv_poll_start", -rc);
      return env.Undefined();
    }
    Ref();  // stay alive while polling, even if JS drops the wrapper
    return env.Undefined();
  }

  static void OnPollThunk(void* owner, int status, int events) {
    static_cast<TunHandle*>(owner)->OnPoll(status);
  }

  void OnPoll(int status) {
    double* st = stats_.ptr;
    if (status < 0) {
      // libuv stopped the handle (POLLERR): count it, re-arm, and try to read anyway.
      st[kPollErrors] += 1;
      poller_.Rearm();
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxRoundsPerWake && fd_ >= 0; round++) {
      uint32_t n = 0;
      bool drained = false;
      while (n < capacity_) {
        uint32_t o = n * slot_ + headroom_;
        ssize_t r = read(fd_, buf_.ptr + o, readMax_);
        if (r < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) st[kReadErrors] += 1;
          drained = true;
          break;
        }
        off_.ptr[n] = o;
        len_.ptr[n] = static_cast<uint32_t>(r);
        st[kRxPackets] += 1;
        st[kRxBytes] += static_cast<double>(r);
        n++;
      }
      if (n > 0) {
        st[kReadBatches] += 1;
        CallFromLoop(env, async_, Value(), cb_.Value(), n);
      }
      if (drained) break;
    }
  }

  // write(buf: Buffer, off: Uint32Array, len: Uint32Array, count) -> packets written
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RawView b, o, l;
    if (info.Length() < 4 || !GetRaw(env, info[0], &b) || !GetRaw(env, info[1], &o) || !GetRaw(env, info[2], &l)) {
      ThrowType(env, "write(buf, off, len, count)");
      return env.Undefined();
    }
    if (fd_ < 0) return Napi::Number::New(env, 0);
    const uint32_t* off = reinterpret_cast<const uint32_t*>(o.data);
    const uint32_t* len = reinterpret_cast<const uint32_t*>(l.data);
    uint32_t count = info[3].As<Napi::Number>().Uint32Value();
    size_t maxCount = std::min(o.bytes, l.bytes) / 4;
    if (count > maxCount) count = static_cast<uint32_t>(maxCount);
    double* st = stats_.ptr;
    uint32_t written = 0;
    for (uint32_t i = 0; i < count; i++) {
      uint64_t end = static_cast<uint64_t>(off[i]) + len[i];
      if (len[i] == 0 || end > b.bytes) {
        st[kWriteErrors] += 1;
        continue;
      }
      ssize_t r;
      do {
        r = write(fd_, b.data + off[i], len[i]);
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        st[kWriteErrors] += 1;
        continue;
      }
      written++;
      st[kTxPackets] += 1;
      st[kTxBytes] += static_cast<double>(r);
    }
    return Napi::Number::New(env, written);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ < 0) return info.Env().Undefined();
    // uv_close removes the fd from epoll at once, so closing the fd right after is safe.
    bool deferred = poller_.Close(&TunHandle::OnPollClosed);
    close(fd_);
    fd_ = -1;
    if (!deferred) ReleaseBatch();
    return info.Env().Undefined();
  }

  static void OnPollClosed(void* owner) {
    TunHandle* self = static_cast<TunHandle*>(owner);
    Napi::HandleScope scope(self->Env());
    self->ReleaseBatch();
    self->Unref();
  }

  void ReleaseBatch() {
    buf_.Release();
    off_.Release();
    len_.Release();
    if (!cb_.IsEmpty()) cb_.Reset();
    if (async_) {
      napi_async_destroy(Env(), async_);
      async_ = nullptr;
    }
  }

  int fd_ = -1;
  std::string name_;
  Poller poller_;
  Pinned<double> stats_;
  Pinned<uint8_t> buf_;
  Pinned<uint32_t> off_;
  Pinned<uint32_t> len_;
  uint32_t capacity_ = 0, slot_ = 0, headroom_ = 0, readMax_ = 0;
  Napi::FunctionReference cb_;
  napi_async_context async_ = nullptr;
};

}  // namespace

// openTun(name, vnetHdr, multiQueue) -> [fd, name]: a TUN fd the data-plane engine polls itself
// (attachTun); with vnetHdr every packet carries a virtio_net_hdr and TSO super-packets arrive.
static Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) {
    ThrowType(env, "openTun(name, vnetHdr, multiQueue)");
    return env.Undefined();
  }
  TunOpenResult t = OpenTunDevice(info[0].As<Napi::String>().Utf8Value(), info[1].ToBoolean().Value(),
                                  info[2].ToBoolean().Value());
  if (t.fd < 0) {
    ThrowErrno(env, t.syscall, t.err);
    return env.Undefined();
  }
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, Napi::Number::New(env, t.fd));
  r.Set(1u, Napi::String::New(env, t.name));
  return r;
}

// closeFd(fd): closes an fd from openTun that no engine took over
static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("TunHandle", TunHandle::Define(env));
  exports.Set("openTun", Napi::Function::New(env, OpenTun, "openTun"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace vpcgw
