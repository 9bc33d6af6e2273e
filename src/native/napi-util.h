// N-API helpers shared by the addon's bindings (io/, engine/, testing/): errno errors, typed-array
// access, and a uv_poll wrapper that survives POLLERR (libuv stops a poll handle on POLLERR; we
// re-arm it).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace vpcgw {

// Throws a JS Error with message strerror(err) and properties errno/syscall. The TS layer wraps it
// into an IoError that names the operation and the object.
inline void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

inline void ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}

// Raw view of a Buffer / TypedArray argument (no copy, no allocation).
struct RawView {
  uint8_t* data = nullptr;
  size_t bytes = 0;  // byte length
};

inline bool GetRaw(napi_env env, napi_value v, RawView* out) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type t;
    size_t length = 0;
    void* data = nullptr;
    napi_value ab;
    size_t byteOffset = 0;
    if (napi_get_typedarray_info(env, v, &t, &length, &data, &ab, &byteOffset) != napi_ok) return false;
    size_t elem = 1;
    switch (t) {
      case napi_uint16_array: case napi_int16_array: elem = 2; break;
      case napi_uint32_array: case napi_int32_array: case napi_float32_array: elem = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
      default: elem = 1;
    }
    out->data = static_cast<uint8_t*>(data);
    out->bytes = length * elem;
    return true;
  }
  return false;
}

// Keeps a JS typed array alive and caches its data pointer (Buffer / TypedArray memory does not move).
template <typename T>
struct Pinned {
  Napi::ObjectReference ref;
  T* ptr = nullptr;
  size_t count = 0;  // elements of T

  bool Pin(Napi::Env env, Napi::Value v) {
    RawView r;
    if (!v.IsObject() || !GetRaw(env, v, &r)) return false;
    ref = Napi::Persistent(v.As<Napi::Object>());
    ptr = reinterpret_cast<T*>(r.data);
    count = r.bytes / sizeof(T);
    return true;
  }
  void Release() {
    if (!ref.IsEmpty()) ref.Reset();
    ptr = nullptr;
    count = 0;
  }
};

// A uv_poll_t on an fd, owned by a native object. The handle memory is freed in the close callback,
// so Close() is safe to call from inside the poll callback.
class Poller {
 public:
  using Handler = void (*)(void* owner, int status, int events);

  int Start(uv_loop_t* loop, int fd, void* owner, Handler h) {
    if (handle_) return UV_EALREADY;
    handle_ = new Box();
    handle_->owner = owner;
    handle_->handler = h;
    int rc = uv_poll_init(loop, &handle_->poll, fd);
    if (rc != 0) {
      delete handle_;
      handle_ = nullptr;
      return rc;
    }
    handle_->poll.data = handle_;
    return Rearm();
  }

  // (Re)starts readable polling. uv_poll_start on an active handle just updates the mask.
  int Rearm() {
    if (!handle_) return UV_EINVAL;
    return uv_poll_start(&handle_->poll, UV_READABLE, &Poller::OnPoll);
  }

  // Stops readable polling until the next Rearm (the handle stays open).
  int Pause() { return handle_ ? uv_poll_stop(&handle_->poll) : UV_EINVAL; }

  bool Active() const { return handle_ != nullptr; }

  // Stops polling and frees the handle later; `done(owner)` runs once libuv has released it.
  // Returns false (and calls nothing) when no poll was started.
  bool Close(void (*done)(void* owner)) {
    if (!handle_) return false;
    handle_->done = done;
    uv_poll_stop(&handle_->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), &Poller::OnClosed);
    handle_->handler = nullptr;
    handle_ = nullptr;
    return true;
  }

 private:
  struct Box {
    uv_poll_t poll;
    void* owner = nullptr;
    Handler handler = nullptr;
    void (*done)(void*) = nullptr;
  };

  static void OnPoll(uv_poll_t* p, int status, int events) {
    Box* b = static_cast<Box*>(p->data);
    if (b->handler) b->handler(b->owner, status, events);
  }
  static void OnClosed(uv_handle_t* h) {
    Box* b = static_cast<Box*>(h->data);
    if (b->done) b->done(b->owner);
    delete b;
  }

  Box* handle_ = nullptr;
};

// Calls a JS callback from a libuv callback (top of stack): MakeCallback runs microtasks afterwards,
// and an exception thrown by JS is routed to process 'uncaughtException' instead of being lost.
inline void CallFromLoop(napi_env env, napi_async_context ctx, napi_value recv, napi_value fn, size_t argc,
                         const napi_value* argv) {
  napi_value result;
  napi_status st = napi_make_callback(env, ctx, recv, fn, argc, argv, &result);
  if (st != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
}

// The same with one argument, a count (the usual "n packets are in the batch" callback).
inline void CallFromLoop(napi_env env, napi_async_context ctx, napi_value recv, napi_value fn, uint32_t n) {
  napi_value argv[1];
  napi_create_uint32(env, n, &argv[0]);
  CallFromLoop(env, ctx, recv, fn, 1, argv);
}

void InitTun(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);
void InitDataPlane(Napi::Env env, Napi::Object exports);

}  // namespace vpcgw
