// Placeholder: replaced by the TUN/UDP batch I/O addon.
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(vpcgw_native, Init)
