import type { Logger } from '../common/log.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { NativeUdp } from '../net/native-udp.js';
import type { GatewayConfig } from './config/types.js';
import { SslServer } from './ssl-server.js';
import { sslServerConfigFrom } from './ssl-server-config.js';
import type { VpnServerStatus } from './status.js';

/** The point-to-cloud servers of a gateway, as the daemon drives them. */
export interface VpnServers {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): VpnServerStatus[];
}

export type VpnServersFactory = (ctx: { config: GatewayConfig; log: Logger; dataPlane: DataPlane }) => VpnServers;

/** One OpenVPN-compatible SslServer per `vpnServers` entry, on the gateway's data plane. */
export const sslVpnServers: VpnServersFactory = ({ config, log, dataPlane }) => {
  const servers = config.vpnServers.map(
    (v) =>
      new SslServer({
        config: sslServerConfigFrom(v),
        log: log.child({ vpnServer: v.name }),
        tunnel: dataPlane,
        udpBind: (address, port) => NativeUdp.bind({ address, port, log }),
      }),
  );
  return {
    async start() {
      for (const s of servers) await s.start();
    },
    async stop() {
      for (const s of servers) await s.stop();
    },
    status() {
      return servers.map((s) => s.summary());
    },
  };
};
