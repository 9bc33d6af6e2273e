// Receive moderation of the native data plane (src/native/engine/engine.cc has the mechanism).

/**
 * The default hold, in µs. Measured with bench/e2e/p2c.mjs (one stock openvpn client sending iperf3
 * TCP through the SSL VPN, server CPU-seconds per GB carried): 0 → 8.5, 100 → 4.7, 200 → 3.1–4.0;
 * the ESP path (strongSwan as the sender) 3.5–4.3 → 2.5 at 200.
 */
export const DEFAULT_RX_MODERATION_US = 200;
/** The largest hold the engine accepts (kMaxModerationUs in src/native/engine/engine.h). */
export const MAX_RX_MODERATION_US = 10_000;
