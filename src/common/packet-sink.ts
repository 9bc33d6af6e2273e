/**
 * Where packets for a tunnel that is not ESP (the SSL VPN) go, batch by batch. `push` is called per
 * packet during a batch: the buffer region is valid only during the call (copy it). `flush` is
 * called once at the end of a batch in which `push` was called.
 */
export interface PacketSink {
  push(buf: Buffer, off: number, len: number): void;
  flush(): void;
}
