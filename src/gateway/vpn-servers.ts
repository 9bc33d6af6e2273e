import { VpnError } from '../common/errors.js';
import { parseIp, parsePrefix } from '../common/ip.js';
import { PEER_ID_MAX } from '../ssl/wire/data-packet.js';
import type { Logger } from '../common/log.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { NativeUdp } from '../net/native-udp.js';
import type { GatewayConfig, VpnServerConfig } from './config/types.js';
import { SslServer } from './ssl-server.js';
import { sslServerConfigFrom } from './ssl-server-config.js';
import { LocalUserAuthenticator } from './users.js';
import type { VpnServerStatus } from './status.js';
import { sslPushes } from './vpcep.js';

/** The server's entry with what VPC endpoints add to the routes and DNS servers it pushes (vpcep.ts sslPushes). */
export function withEndpointPushes(v: VpnServerConfig, cfg: GatewayConfig): VpnServerConfig {
  const extra = sslPushes(cfg, v.name);
  if (extra.routes.length === 0 && extra.dns.length === 0) return v;
  const have = new Set(v.localSubnets.map((p) => p.text));
  return {
    ...v,
    localSubnets: [...v.localSubnets, ...extra.routes.filter((r) => !have.has(r)).map((text) => ({ text, prefix: parsePrefix(text, true)! }))],
    dnsServers: [...extra.dns.map((text) => ({ text, addr: parseIp(text)! })), ...v.dnsServers.filter((d) => !extra.dns.includes(d.text))],
  };
}

/**
 * The point-to-cloud servers of a gateway, as the daemon drives them. `addServer`/`removeServer`
 * let a live config change (Gateway.applyConfig) touch one server and leave the others' clients
 * connected; without them the daemon stops and re-creates the whole set.
 */
export interface VpnServers {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): VpnServerStatus[];
  /** Creates and starts a server for `v` (a new entry, or a changed one after removeServer). */
  addServer?(v: VpnServerConfig): Promise<void>;
  /** Stops the named server (its clients are dropped, their routes removed) and forgets it; no-op for an unknown name. */
  removeServer?(name: string): Promise<void>;
  /**
   * Closes one client session of the named server, by its status id or user name (SslServer.disconnect).
   * ERR_NOT_FOUND for an unknown server or client.
   */
  disconnect?(server: string, client: string, halt: boolean): { server: string; client: string; user: string };
  /**
   * The users section changed (a live config change; `next` is in force): sessions of users removed,
   * disabled or no longer allowed on a server end at once (the client is told HALT with the reason),
   * static addresses are re-reserved (sessions on an address they may no longer hold are told
   * RESTART), and the sessions' origins are asked for again.
   */
  usersChanged?(prev: GatewayConfig, next: GatewayConfig): void;
  /** Looks up every session's policy origin again (after a config change; SslServer.refreshOrigins). */
  refreshOrigins?(): void;
}

export type VpnServersFactory = (ctx: {
  config: GatewayConfig;
  log: Logger;
  dataPlane: DataPlane;
  /** the config the daemon runs now (it changes live); password logins read its users section */
  liveConfig?: () => GatewayConfig;
  /**
   * The origin (src/vpcep/policy.ts) of a session of `user` on `server`: the gateway numbers each
   * (server, sorted group set) combination (userGroups in src/gateway/vpcep.ts).
   * Absent: sessions carry origin 0. Asked at login and again after every config change.
   */
  originOf?: (server: string, user: string) => number;
}) => VpnServers;

/**
 * Peer-ids per server: the data plane they share finds an OpenVPN session by its peer-id alone
 * (the 24-bit peer-id of P_DATA_V2, OpenVPN ssl_pkt.h), so each server gets its own block of it.
 * 2^17 ids hold a server's maxConnections (at most 65535) plus its half-open sessions; 127 servers fit.
 */
export const PEER_ID_BLOCK = 1 << 17;
const PEER_ID_BLOCKS = Math.floor((PEER_ID_MAX + 1) / PEER_ID_BLOCK);

/** One OpenVPN-compatible SslServer per `vpnServers` entry, on the gateway's data plane. */
export const sslVpnServers: VpnServersFactory = ({ config, log, dataPlane, liveConfig, originOf }) => {
  const authenticator = new LocalUserAuthenticator(() => (liveConfig ? liveConfig() : config).users);
  /** server name → its peer-id block; a removed server's block is free again */
  const blocks = new Map<string, number>();
  const blockFor = (name: string): number => {
    const have = blocks.get(name);
    if (have !== undefined) return have;
    const used = new Set(blocks.values());
    for (let b = 0; b < PEER_ID_BLOCKS; b++) {
      if (!used.has(b)) {
        blocks.set(name, b);
        return b;
      }
    }
    throw new VpnError('ERR_CONFIG', `more than ${PEER_ID_BLOCKS} VPN servers on one gateway`);
  };
  const users = (): GatewayConfig['users'] => (liveConfig ? liveConfig() : config).users;
  const create = (v: VpnServerConfig): SslServer =>
    new SslServer({
      config: { ...sslServerConfigFrom(withEndpointPushes(v, liveConfig ? liveConfig() : config)), peerIds: { first: blockFor(v.name) * PEER_ID_BLOCK, count: PEER_ID_BLOCK } },
      log: log.child({ vpnServer: v.name }),
      tunnel: dataPlane,
      udpBind: (address, port) => NativeUdp.bind({ address, port, log, reusePort: dataPlane.sslOffload?.sslReusePort ?? false }),
      authenticator,
      admit: (user) => userRefusal(users(), v.name, user),
      staticAddresses: staticAddressesOf(users(), v.name),
      originOf: originOf ? (user) => originOf(v.name, user) : undefined,
    });
  const servers = new Map<string, SslServer>(config.vpnServers.map((v) => [v.name, create(v)]));
  return {
    async start() {
      for (const s of servers.values()) await s.start();
    },
    async stop() {
      for (const s of servers.values()) await s.stop();
    },
    status() {
      return [...servers.values()].map((s) => s.summary());
    },
    async addServer(v) {
      if (servers.has(v.name)) await this.removeServer!(v.name);
      const s = create(v);
      await s.start(); // a failed start closes what it opened
      servers.set(v.name, s);
    },
    disconnect(server, client, halt) {
      const s = servers.get(server);
      if (!s) throw new VpnError('ERR_NOT_FOUND', `VPN server ${server} is not running`);
      const r = s.disconnect(client, halt);
      return { server, client: r.id, user: r.user };
    },
    refreshOrigins() {
      for (const s of servers.values()) s.refreshOrigins();
    },
    usersChanged(prev, next) {
      for (const [name, s] of servers) {
        for (const user of s.onlineUsers()) {
          const why = prev.users.some((u) => u.name === user) && !next.users.some((u) => u.name === user)
            ? 'user removed'
            : userRefusal(next.users, name, user);
          if (why !== null) s.endUserSessions(user, 'HALT', why);
        }
        s.setStaticAddresses(staticAddressesOf(next.users, name));
        s.refreshOrigins();
      }
    },
    async removeServer(name) {
      const s = servers.get(name);
      if (!s) return;
      servers.delete(name);
      await s.stop();
      blocks.delete(name);
    },
  };
};

/**
 * Why `user` may not hold a session on `server` now (null: they may). Names the users section does
 * not list (certificate CNs of cert servers) are admitted: their certificate decides.
 */
export function userRefusal(users: GatewayConfig['users'], server: string, user: string): string | null {
  const u = users.find((x) => x.name === user);
  if (!u) return null;
  if (u.disabled) return 'user disabled';
  if (u.servers && !u.servers.includes(server)) return 'user not allowed on this vpn server';
  return null;
}

/** The static addresses of the users who may log in to `server`: user name → address. */
export function staticAddressesOf(users: GatewayConfig['users'], server: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const u of users) if (u.staticAddress && (!u.servers || u.servers.includes(server))) m.set(u.name, u.staticAddress.text);
  return m;
}
