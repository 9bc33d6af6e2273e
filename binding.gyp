{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags": ["-O2"]
  },
  "targets": [
    {
      "target_name": "vpcgw_native",
      "sources": [
        "src/native/addon.cc",
        "src/native/io/tun-open.cc",
        "src/native/io/tun.cc",
        "src/native/io/udp.cc",
        "src/native/io/netlink.cc",
        "src/native/core/esp.cc",
        "src/native/core/offload.cc",
        "src/native/core/ovpn.cc",
        "src/native/core/ovpn-tcp.cc",
        "src/native/core/policy.cc",
        "src/native/engine/engine.cc",
        "src/native/engine/ssl-peers.cc",
        "src/native/engine/bindings.cc"
      ]
    },
    {
      "target_name": "vpcgw_native_test",
      "sources": [
        "src/native/testing/test-addon.cc",
        "src/native/testing/esp-core.cc",
        "src/native/testing/ovpn-core.cc",
        "src/native/testing/policy-core.cc",
        "src/native/core/esp.cc",
        "src/native/core/ovpn.cc",
        "src/native/core/policy.cc"
      ]
    }
  ]
}
