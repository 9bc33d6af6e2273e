/**
 * Why the data plane dropped a packet. Hot-path functions return one of these (NONE = delivered);
 * callers bump a per-SA counter (`EspSa.drops[reason]`) and a global one. Values are stable array
 * indexes; names are what counters print.
 */
export enum DropReason {
  NONE = 0,
  /** shorter than the headers, IV and ICV it claims */
  SHORT = 1,
  /** no SA for the SPI (inbound) or for the route's SPI (outbound) */
  NO_SA = 2,
  /** RFC 4303 §3.4.3: seen already, or left of the window (with ESN also: no valid seq-hi, Appendix A2.2) */
  REPLAY = 3,
  /** integrity check (ICV / AEAD tag) failed */
  ICV = 4,
  /** pad length too large, or padding bytes not 1, 2, 3, … (RFC 4303 §2.4) */
  BAD_PAD = 5,
  /** next header not 4/41, or the inner IP header does not fit */
  BAD_INNER = 6,
  /** inner addresses outside the SA's traffic selectors */
  POLICY = 7,
  /** outbound sequence number would pass 2^32 − 1 (2^64 − 1 with ESN): must rekey */
  SEQ_EXHAUSTED = 8,
  /** no route (LPM) for the destination */
  NO_ROUTE = 9,
  /** the SA passed its hard lifetime */
  EXPIRED = 10,
  /** ciphertext length not a multiple of the cipher block */
  MALFORMED = 11,
  /** no headroom/tailroom/slot space to build the packet */
  NO_ROOM = 12,
  /** RFC 4303 §2.6 dummy packet (next header 59): dropped silently, counted */
  DUMMY = 13,
  /** no UDP socket for the SA's local address */
  NO_BIND = 14,
}

export const DROP_REASON_COUNT = 15;

/** Names indexed by reason, for counters and logs. */
export const DROP_REASON_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (let i = 0; i < DROP_REASON_COUNT; i++) names.push(DropReason[i] ?? `R${i}`);
  return names;
})();
