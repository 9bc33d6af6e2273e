import { parseIp, type Family } from './ip.js';

/**
 * UDP endpoints, shared by the IKE core, the data plane and the gateway.
 *
 * The IKE core carries an address and a port (the family follows from the address text); sockets
 * and the data plane also carry the address family, as the kernel reports it with each datagram.
 * An `Endpoint` is therefore usable wherever a `HostPort` is expected.
 */

/** An address (text, as `formatIp` prints it) and a UDP port. */
export interface HostPort {
  readonly address: string;
  readonly port: number;
}

/** A UDP endpoint with its address family, as sockets and the data plane see it. */
export interface Endpoint extends HostPort {
  readonly family: Family;
}

/** `ip:port`, or `[ip]:port` for IPv6: how a peer prints everywhere (logs, status). */
export function formatEndpoint(e: HostPort): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** The endpoint with its family, read from the address text (IPv4 when the text is no address). */
export function withFamily(e: HostPort): Endpoint {
  return { family: parseIp(e.address)?.family ?? 4, address: e.address, port: e.port };
}
