/** What a local-endpoint lookup needs of a UDP bind (UdpBind and FdUdpBind both have it). */
export interface BoundEndpoint {
  readonly family: number;
  readonly address: string;
  readonly port: number;
}

/**
 * Index of the bind that owns a local endpoint, shared by both data plane backends so they agree:
 * an exact address+port bind first, else the first wildcard bind (0.0.0.0 / ::) of the same family
 * and port; -1 when there is none.
 */
export function bindIndexFor(binds: readonly BoundEndpoint[], family: number, address: string, port: number): number {
  let wildcard = -1;
  for (let i = 0; i < binds.length; i++) {
    const b = binds[i]!;
    if (b.family !== family || b.port !== port) continue;
    if (b.address === address) return i;
    if (wildcard < 0 && (b.address === '0.0.0.0' || b.address === '::')) wildcard = i;
  }
  return wildcard;
}
