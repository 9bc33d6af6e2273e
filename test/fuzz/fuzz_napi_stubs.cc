// Link stubs for test/fuzz/fuzz_inbound.cc: the data-plane engine links against N-API and libuv,
// which only a Node.js process provides. The fuzzed demux never calls into JavaScript or the event
// loop (no callbacks are set, no socket is polled), so every stub traps: reaching one is a bug in
// the harness or a new JS call on the inbound path. Declared without prototypes on purpose (C
// linkage, only the symbol matters); this file includes no header that declares them.
extern "C" {
#define VPCGW_STUB(name) \
  void name() { __builtin_trap(); }
VPCGW_STUB(napi_async_destroy)
VPCGW_STUB(napi_async_init)
VPCGW_STUB(napi_call_function)
VPCGW_STUB(napi_close_handle_scope)
VPCGW_STUB(napi_create_array_with_length)
VPCGW_STUB(napi_create_buffer_copy)
VPCGW_STUB(napi_create_double)
VPCGW_STUB(napi_create_error)
VPCGW_STUB(napi_create_object)
VPCGW_STUB(napi_create_reference)
VPCGW_STUB(napi_create_string_utf8)
VPCGW_STUB(napi_create_type_error)
VPCGW_STUB(napi_create_uint32)
VPCGW_STUB(napi_define_properties)
VPCGW_STUB(napi_delete_reference)
VPCGW_STUB(napi_fatal_error)
VPCGW_STUB(napi_fatal_exception)
VPCGW_STUB(napi_get_and_clear_last_exception)
VPCGW_STUB(napi_get_last_error_info)
VPCGW_STUB(napi_get_property)
VPCGW_STUB(napi_get_reference_value)
VPCGW_STUB(napi_get_typedarray_info)
VPCGW_STUB(napi_get_uv_event_loop)
VPCGW_STUB(napi_has_property)
VPCGW_STUB(napi_is_exception_pending)
VPCGW_STUB(napi_make_callback)
VPCGW_STUB(napi_open_handle_scope)
VPCGW_STUB(napi_reference_ref)
VPCGW_STUB(napi_reference_unref)
VPCGW_STUB(napi_set_element)
VPCGW_STUB(napi_throw)
VPCGW_STUB(napi_typeof)
VPCGW_STUB(uv_close)
VPCGW_STUB(uv_hrtime)
VPCGW_STUB(uv_now)
VPCGW_STUB(uv_poll_init)
VPCGW_STUB(uv_poll_start)
VPCGW_STUB(uv_poll_stop)
VPCGW_STUB(uv_translate_sys_error)
}
