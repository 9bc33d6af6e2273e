{
  "targets": [
    {
      "target_name": "vpcgw_native",
      "sources": [
        "src/tun/native/addon.cc",
        "src/tun/native/tun.cc",
        "src/tun/native/udp.cc",
        "src/tun/native/netlink.cc",
        "src/tun/native/esp.cc",
        "src/tun/native/offload.cc",
        "src/tun/native/ovpn.cc",
        "src/tun/native/dataplane.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags": ["-O2"]
    }
  ]
}
