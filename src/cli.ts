#!/usr/bin/env node
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { VpnError, type ErrorCode } from './common/errors.js';
import type * as ConfigLoad from './gateway/config/load.js';
import type { GatewayConfig } from './gateway/config/types.js';
import { controlCall } from './gateway/control.js';
import type { GatewayOptions } from './gateway/daemon.js';
import type { RunningGateway } from './gateway/run.js';
import { CONTROL_SOCKET_NAME, defaultDataDir } from './gateway/paths.js';
import { diagnose, formatDiagnosis, formatStatus, type GatewayStatus } from './gateway/status.js';
import type { PlanStep } from './gateway/service.js';
import { PKI_IKE_COMMANDS, PKI_IKE_USAGE, pkiIkeCommand } from './gateway/pki-ike.js';

// The daemon's code (run.ts: fastify, SQLite, the data plane), the config loader and the PKI are
// imported where a command needs them, so commands that only talk to the control socket
// (status, diagnose, ...) start in a fraction of the time.
const loadConfig = async (...a: Parameters<typeof ConfigLoad.loadConfigFile>): Promise<GatewayConfig> =>
  (await import('./gateway/config/load.js')).loadConfigFile(...a);

/**
 * vpcgw: the command line. Every failure is one line on stderr ("vpcgw: ...") and exit code 1.
 */

export const USAGE = `usage: vpcgw <command> [options]

commands:
  start [--config FILE] [--control PATH]   run the gateway (root). Without --config: uses
                                           $VPCGW_DATA_DIR/vpcgw.yaml (default ./var), created if missing
  status [--json] [--control PATH | --config FILE]
                                           show the gateway, its connections and VPN servers
  diagnose NAME [--json] [--control PATH | --config FILE]
                                           why a VPN connection is down: its state, last error
                                           and a suggested fix
  initiate NAME [--control PATH | --config FILE]   bring a VPN connection up
  terminate NAME [--control PATH | --config FILE]  take a VPN connection down
  rekey NAME [--ike] [--control PATH | --config FILE]
                                           rekey an established VPN connection now: its CHILD_SAs, or
                                           with --ike its IKE SA
  disconnect USER | SERVER CLIENT [--halt] [--control PATH | --config FILE]
                                           close a VPN client's session (CLIENT: its id from status, or
                                           its user name; USER alone: every session of that user on
                                           every server); the client reconnects, with --halt it exits
  check-config FILE                        validate a config file and exit
  apply -f FILE [--dry-run] [--control PATH]
                                           make the running gateway match FILE (create, update, delete
                                           resources); prints the plan first; --dry-run: only the plan
  get KIND [NAME] [--json] [--control PATH]
                                           list resources of a kind (customer-gateways, vpn-connections,
                                           vpn-servers, users, user-groups, access-policies, vpn-gateways,
                                           vpc-endpoint-services, vpc-endpoints), or show one by name or id
  endpoint accept|reject SERVICE ENDPOINT [--control PATH]
                                           accept or reject a VPC endpoint of an endpoint service (the
                                           decision is stored; rejecting cuts its flows at once)
  delete KIND NAME [--control PATH]        delete a resource
  peer-config NAME [--format swanctl|libreswan] [--control PATH]
                                           print the customer gateway's config for a VPN connection
  clients [SERVER] [--json] [--control PATH]
                                           the SSL VPN clients online now (all servers, or SERVER's)
  client-config USER [--server NAME] [--host H] [--control PATH]
                                           print a ready .ovpn profile for USER: on cert servers with a
                                           certificate issued now (CN USER) and its key inline (the
                                           gateway keeps no copy of the key); password servers: auth-user-pass
  user add NAME --password-stdin [--group G]... [--server S]... [--control PATH]
                                           create an SSL VPN user (the password is read from stdin,
                                           stored only as a scrypt hash)
  user passwd NAME --password-stdin [--control PATH]   set a user's password (from stdin)
  user disable|enable|remove NAME [--control PATH]     refuse, allow again, or delete a user
  user list [--json] [--control PATH]      list the users (never their passwords)
  group add NAME [--description TEXT] [--control PATH]   create a user group (access policies allow groups)
  group remove NAME [--control PATH]       delete a user group (refused while users or policies name it)
  group list [--json] [--control PATH]     list the user groups
  admin add NAME [--password-stdin] [--control PATH]
                                           add a web console admin (password logins): the password is
                                           read from stdin (asked for on a terminal), at least 8
                                           characters, stored only as a scrypt hash
  admin remove NAME [--control PATH]       delete a web console admin
  admin list [--json] [--control PATH]     list the web console admins (never their passwords)
  token create [--name LABEL] [--control PATH]
                                           print a new API bearer token (alone on stdout; only its hash
                                           is stored)
  pki tls-crypt FILE | pki tls-auth FILE   write a new OpenVPN static key (0600; never overwrites) for a
                                           vpnServer's tlsCrypt / tlsAuth.key
  pki tls-crypt-v2-server FILE             write a new tls-crypt-v2 server key (vpnServers[].tlsCryptV2.serverKey)
  pki tls-crypt-v2-client SERVERKEY FILE   write a new client key wrapped by that server key
  pki issue-client USER --out DIR [--server NAME] [--control PATH]
                                           write DIR/USER.crt and DIR/USER.key (0600), a client
                                           certificate signed by the server's CA (the .key beside clientCa)
  pki revoke-client USER|SERIAL [--server NAME] [--control PATH]
                                           put the user's certificates (issued here) or that serial on
                                           the CRL beside clientCa (the server refuses them from the next
                                           handshake) and end the user's session now
  pki profile [--config FILE]              rewrite <dataDir>/pki/client1.ovpn with the first VPN server's
                                           tls-crypt / tls-auth key inline (tls-crypt-v2: a new client key)
${PKI_IKE_USAGE}
  --help                                   this text

The control socket defaults to <dataDir>/${CONTROL_SOCKET_NAME}; dataDir comes from --config when given.
Environment: VPCGW_DATA_DIR (default data dir), VPCGW_LOG_LEVEL (overrides gateway.logLevel).`;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  isRoot: () => boolean;
  /** all of standard input (`user add|passwd --password-stdin`); default: the process's */
  stdin?: () => Promise<string>;
}

const defaultIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  cwd: process.cwd(),
  isRoot: () => process.getuid?.() === 0,
};

/** A failure the CLI reports as one line and exit 1. */
/** A usage or command failure the CLI reports in one line (exit 1). */
class CliError extends VpnError {
  constructor(message: string, code: ErrorCode = 'ERR_BAD_REQUEST') {
    super(code, message);
  }
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

interface Parsed {
  command: string | undefined;
  positionals: string[];
  values: {
    config?: string; control?: string; json?: boolean; help?: boolean; file?: string; 'dry-run'?: boolean; name?: string; format?: string;
    'password-stdin'?: boolean; group?: string[]; server?: string[]; description?: string;
    ike?: boolean; halt?: boolean; host?: string; out?: string;
  };
}

function parse(argv: string[]): Parsed {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        control: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        file: { type: 'string', short: 'f' },
        'dry-run': { type: 'boolean' },
        name: { type: 'string' },
        format: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        group: { type: 'string', multiple: true },
        server: { type: 'string', multiple: true },
        ike: { type: 'boolean' },
        halt: { type: 'boolean' },
        host: { type: 'string' },
        out: { type: 'string' },
        description: { type: 'string' },
      },
    });
    return { command: positionals[0], positionals: positionals.slice(1), values };
  } catch (e) {
    throw new CliError(`${oneLine(e)} (see vpcgw --help)`);
  }
}

/** The control socket: --control, else <dataDir of --config>/vpcgw.sock, else the default data dir's. */
async function controlPathFor(p: Parsed, io: CliIo): Promise<string> {
  if (p.values.control) return resolve(io.cwd, p.values.control);
  if (p.values.config) return join((await loadConfig(resolve(io.cwd, p.values.config), { checkFiles: false })).gateway.dataDir, CONTROL_SOCKET_NAME);
  return join(defaultDataDir(io.env, io.cwd), CONTROL_SOCKET_NAME);
}

function expectArgs(p: Parsed, n: number, what: string): void {
  if (p.positionals.length !== n) throw new CliError(`${p.command} takes ${what} (see vpcgw --help)`);
}

/** Runs one command; resolves to the exit code. `start` resolves only once the daemon has stopped. */
export async function main(argv: string[], io: CliIo = defaultIo, gatewayOptions: Partial<GatewayOptions> = {}): Promise<number> {
  try {
    // IKE certificates: `pki` subcommands with their own options (src/gateway/pki-ike.ts)
    if (argv[0] === 'pki' && PKI_IKE_COMMANDS.includes(argv[1] ?? '')) {
      io.stdout(pkiIkeCommand(argv.slice(1), io.cwd));
      return 0;
    }
    const p = parse(argv);
    if (p.values.help || p.command === 'help' || p.command === undefined) {
      if (p.command === undefined && !p.values.help) {
        io.stderr(`${USAGE}\n`);
        return 1;
      }
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    switch (p.command) {
      case 'check-config': {
        expectArgs(p, 1, 'one argument: the config file');
        const cfg = await loadConfig(resolve(io.cwd, p.positionals[0]!));
        const eps = cfg.endpointServices.length ? `, ${cfg.endpointServices.length} endpoint services, ${cfg.endpoints.length} endpoints` : '';
        io.stdout(`${cfg.source}: OK (${cfg.customerGateways.length} customer gateways, ${cfg.vpnConnections.length} VPN connections, ${cfg.vpnServers.length} VPN servers${eps})\n`);
        return 0;
      }
      case 'status': {
        expectArgs(p, 0, 'no arguments');
        const st = (await controlCall(await controlPathFor(p, io), 'status')) as GatewayStatus;
        io.stdout(p.values.json ? `${JSON.stringify(st, null, 2)}\n` : `${formatStatus(st)}\n`);
        return 0;
      }
      case 'diagnose': {
        expectArgs(p, 1, 'one argument: the VPN connection name');
        const name = p.positionals[0]!;
        const st = (await controlCall(await controlPathFor(p, io), 'status')) as GatewayStatus;
        const c = st.connections.find((x) => x.name === name);
        if (!c) {
          throw new VpnError('ERR_UNKNOWN_CONNECTION', `no VPN connection named "${name}" (configured: ${st.connections.map((x) => x.name).join(', ') || 'none'})`);
        }
        const d = diagnose(c);
        io.stdout(p.values.json ? `${JSON.stringify(d, null, 2)}\n` : `${formatDiagnosis(d)}\n`);
        return 0;
      }
      case 'initiate':
      case 'terminate': {
        expectArgs(p, 1, 'one argument: the VPN connection name');
        const name = p.positionals[0]!;
        const r = (await controlCall(await controlPathFor(p, io), p.command, { name })) as { name: string; state: string };
        io.stdout(p.values.json ? `${JSON.stringify(r)}\n` : `${r.name}: ${r.state}\n`);
        return 0;
      }
      case 'rekey': {
        expectArgs(p, 1, 'one argument: the VPN connection name');
        const name = p.positionals[0]!;
        const r = (await controlCall(await controlPathFor(p, io), 'rekey', { name, sa: p.values.ike ? 'ike' : 'child' })) as { name: string; sa: string; state: string };
        io.stdout(p.values.json ? `${JSON.stringify(r)}\n` : `${r.name}: ${r.sa === 'ike' ? 'IKE SA' : 'CHILD_SAs'} rekeying (${r.state})\n`);
        return 0;
      }
      case 'disconnect': {
        if (p.positionals.length === 1) return await disconnectUser(p, io, p.positionals[0]!);
        expectArgs(p, 2, 'the user name, or two arguments: the VPN server name and the client (id or user name)');
        const [server, client] = p.positionals as [string, string];
        const r = (await controlCall(await controlPathFor(p, io), 'disconnect', { server, client, halt: p.values.halt === true })) as { server: string; client: string; user: string };
        io.stdout(p.values.json ? `${JSON.stringify(r)}\n` : `${r.server}: client ${r.client}${r.user ? ` (${r.user})` : ''} disconnected\n`);
        return 0;
      }
      case 'pki':
        if (p.positionals[0] === 'issue-client') return await pkiIssueClient(p, io);
        if (p.positionals[0] === 'revoke-client') return await pkiRevokeClient(p, io);
        return await pki(p, io);
      case 'clients':
        return await clientsCommand(p, io);
      case 'client-config': {
        expectArgs(p, 1, 'one argument: the user name');
        const path = await controlPathFor(p, io);
        const query: Record<string, string> = { user: p.positionals[0]! };
        if (p.values.host !== undefined) query.host = p.values.host;
        const r = (await controlCall(path, 'resource.action', { kind: 'vpn-server', id: await serverFor(p, path), action: 'client-config', query })) as { text: string };
        io.stdout(r.text);
        return 0;
      }
      case 'token': {
        if (p.positionals[0] !== 'create' || p.positionals.length !== 1) throw new CliError('token takes one subcommand: create (see vpcgw --help)');
        const t = (await controlCall(await controlPathFor(p, io), 'token.create', { name: p.values.name ?? 'cli' })) as { token: string };
        io.stdout(`${t.token}\n`);
        return 0;
      }
      case 'apply':
        return await applyFile(p, io);
      case 'admin':
        return await adminCommand(p, io);
      case 'user':
        return await userCommand(p, io);
      case 'endpoint':
        return await endpointCommand(p, io);
      case 'group':
        return await groupCommand(p, io);
      case 'get': {
        if (p.positionals.length < 1 || p.positionals.length > 2) throw new CliError('get takes a kind and optionally a name or id (see vpcgw --help)');
        const [kind, id] = p.positionals as [string, string | undefined];
        const path = await controlPathFor(p, io);
        const r = id === undefined
          ? ((await controlCall(path, 'resource.list', { kind })) as { items: Record<string, unknown>[] }).items
          : await controlCall(path, 'resource.get', { kind, id });
        io.stdout(p.values.json || id !== undefined ? `${JSON.stringify(r, null, 2)}\n` : formatList(r as Record<string, unknown>[]));
        return 0;
      }
      case 'delete': {
        expectArgs(p, 2, 'two arguments: the kind and the name or id');
        const [kind, id] = p.positionals as [string, string];
        await controlCall(await controlPathFor(p, io), 'resource.delete', { kind, id });
        io.stdout(`${kind} ${id}: deleted\n`);
        return 0;
      }
      case 'peer-config': {
        expectArgs(p, 1, 'one argument: the VPN connection name');
        const r = (await controlCall(await controlPathFor(p, io), 'resource.action', {
          kind: 'vpn-connection', id: p.positionals[0]!, action: 'peer-config', query: { format: p.values.format ?? 'swanctl' },
        })) as { text: string };
        io.stdout(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
        return 0;
      }
      case 'start':
        expectArgs(p, 0, 'no arguments');
        return await start(p, io, gatewayOptions);
      default:
        throw new CliError(`unknown command "${p.command}" (see vpcgw --help)`);
    }
  } catch (e) {
    io.stderr(`vpcgw: ${oneLine(e)}\n`);
    return 1;
  }
}

/**
 * `vpcgw endpoint accept|reject SERVICE ENDPOINT`: the endpoint service's connections/action
 * (receive or reject) over the control socket, as the API's POST …/connections/action.
 */
async function endpointCommand(p: Parsed, io: CliIo): Promise<number> {
  const [sub, service, endpoint, ...rest] = p.positionals;
  if ((sub !== 'accept' && sub !== 'reject') || !service || !endpoint || rest.length > 0) {
    throw new CliError('endpoint takes accept or reject, the endpoint service and the endpoint (see vpcgw --help)');
  }
  const r = (await controlCall(await controlPathFor(p, io), 'resource.action', {
    kind: 'vpc-endpoint-service', id: service, action: 'connections/action', query: {},
    body: { action: sub === 'accept' ? 'receive' : 'reject', endpoints: [endpoint] },
  })) as { json: { connections: { endpoint_name: string; status: string }[] } };
  const c = r.json.connections;
  io.stdout(p.values.json ? `${JSON.stringify(c, null, 2)}\n` : c.map((x) => `${x.endpoint_name}: ${x.status}\n`).join(''));
  return 0;
}

/**
 * `vpcgw user ...`: the `user` resources over the control socket (resource.create / replace /
 * delete / list). The password comes from stdin, never argv (argv is visible to every local
 * user in /proc); the root-only control socket carries it to the daemon, which stores its hash.
 */
async function userCommand(p: Parsed, io: CliIo): Promise<number> {
  const [sub, name, ...rest] = p.positionals;
  const needName = (): string => {
    if (!name || rest.length > 0) throw new CliError(`user ${sub ?? ''} takes one argument: the user name (see vpcgw --help)`);
    return name;
  };
  const onlyFor = (subs: string[]): void => {
    if ((p.values.group?.length || p.values.server?.length) && !subs.includes(sub ?? '')) throw new CliError(`--group and --server go with user add (see vpcgw --help)`);
    if (p.values['password-stdin'] && sub !== 'add' && sub !== 'passwd') throw new CliError('--password-stdin goes with user add and user passwd (see vpcgw --help)');
  };
  onlyFor(['add']);
  const password = async (): Promise<string> => {
    if (!p.values['password-stdin']) throw new CliError(`user ${sub} needs --password-stdin (the password is read from stdin, never taken from the command line)`);
    const text = await (io.stdin ?? readStdin)();
    const first = text.split(/\r?\n/)[0] ?? '';
    if (first.length === 0) throw new CliError('no password on stdin');
    return first;
  };
  const path = await controlPathFor(p, io);
  switch (sub) {
    case 'add': {
      const n = needName();
      const body: Record<string, unknown> = { name: n, password: await password() };
      if (p.values.group?.length) body.groups = p.values.group;
      if (p.values.server?.length) body.servers = p.values.server;
      await controlCall(path, 'resource.create', { kind: 'user', body });
      io.stdout(`user ${n}: created
`);
      return 0;
    }
    case 'passwd': {
      const n = needName();
      await controlCall(path, 'resource.replace', { kind: 'user', id: n, body: { password: await password() } });
      io.stdout(`user ${n}: password changed
`);
      return 0;
    }
    case 'disable':
    case 'enable': {
      const n = needName();
      await controlCall(path, 'resource.replace', { kind: 'user', id: n, body: { disabled: sub === 'disable' } });
      io.stdout(`user ${n}: ${sub}d
`);
      return 0;
    }
    case 'remove': {
      const n = needName();
      await controlCall(path, 'resource.delete', { kind: 'user', id: n });
      io.stdout(`user ${n}: removed
`);
      return 0;
    }
    case 'list': {
      if (name !== undefined) throw new CliError('user list takes no arguments (see vpcgw --help)');
      const items = ((await controlCall(path, 'resource.list', { kind: 'user' })) as { items: Record<string, unknown>[] }).items;
      io.stdout(p.values.json ? `${JSON.stringify(items, null, 2)}
` : formatUsers(items));
      return 0;
    }
    default:
      throw new CliError('user takes a subcommand: add, passwd, disable, enable, remove or list (see vpcgw --help)');
  }
}

/**
 * `vpcgw admin ...`: the web console's local admins, kept in the store (admin.add / remove / list
 * on the control socket). As for `user add`, the password comes from stdin, never argv; without
 * --password-stdin on a terminal it is asked for (twice, not echoed).
 */
async function adminCommand(p: Parsed, io: CliIo): Promise<number> {
  const [sub, name, ...rest] = p.positionals;
  if (p.values['password-stdin'] && sub !== 'add') throw new CliError('--password-stdin goes with admin add (see vpcgw --help)');
  const needName = (): string => {
    if (!name || rest.length > 0) throw new CliError(`admin ${sub ?? ''} takes one argument: the admin's name (see vpcgw --help)`);
    return name;
  };
  const path = await controlPathFor(p, io);
  switch (sub) {
    case 'add': {
      const n = needName();
      let password: string;
      if (p.values['password-stdin'] || io.stdin || !process.stdin.isTTY) {
        const text = await (io.stdin ?? readStdin)();
        password = text.split(/\r?\n/)[0] ?? '';
      } else {
        password = await askHidden('password: ');
        if ((await askHidden('again: ')) !== password) throw new CliError('the two passwords differ');
      }
      if (password.length === 0) throw new CliError('no password given (vpcgw admin add NAME --password-stdin reads it from stdin)');
      await controlCall(path, 'admin.add', { name: n, password });
      io.stdout(`admin ${n}: added\n`);
      return 0;
    }
    case 'remove': {
      const n = needName();
      await controlCall(path, 'admin.remove', { name: n });
      io.stdout(`admin ${n}: removed\n`);
      return 0;
    }
    case 'list': {
      if (name !== undefined) throw new CliError('admin list takes no arguments (see vpcgw --help)');
      const r = (await controlCall(path, 'admin.list', {})) as { admins: { name: string; createdAt: string }[] };
      if (p.values.json) io.stdout(`${JSON.stringify(r.admins, null, 2)}\n`);
      else io.stdout(r.admins.length ? r.admins.map((a) => `${a.name}  (added ${a.createdAt})\n`).join('') : 'no admins (vpcgw admin add NAME)\n');
      return 0;
    }
    default:
      throw new CliError('admin takes a subcommand: add, remove or list (see vpcgw --help)');
  }
}

/** One line from the terminal without echoing it (a password). */
function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const done = (err: Error | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new CliError('interrupted'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** `vpcgw group ...`: the `user-group` resources over the control socket. */
async function groupCommand(p: Parsed, io: CliIo): Promise<number> {
  const [sub, name, ...rest] = p.positionals;
  if (p.values.description !== undefined && sub !== 'add') throw new CliError('--description goes with group add (see vpcgw --help)');
  const needName = (): string => {
    if (!name || rest.length > 0) throw new CliError(`group ${sub ?? ''} takes one argument: the group name (see vpcgw --help)`);
    return name;
  };
  const path = await controlPathFor(p, io);
  switch (sub) {
    case 'add': {
      const n = needName();
      const body: Record<string, unknown> = { name: n };
      if (p.values.description !== undefined) body.description = p.values.description;
      await controlCall(path, 'resource.create', { kind: 'user-group', body });
      io.stdout(`group ${n}: created\n`);
      return 0;
    }
    case 'remove': {
      const n = needName();
      await controlCall(path, 'resource.delete', { kind: 'user-group', id: n });
      io.stdout(`group ${n}: removed\n`);
      return 0;
    }
    case 'list': {
      if (name !== undefined) throw new CliError('group list takes no arguments (see vpcgw --help)');
      const items = ((await controlCall(path, 'resource.list', { kind: 'user-group' })) as { items: Record<string, unknown>[] }).items;
      if (p.values.json) io.stdout(`${JSON.stringify(items, null, 2)}\n`);
      else {
        const w = Math.max(4, ...items.map((i) => String(i.name).length));
        io.stdout(`${['NAME'.padEnd(w) + '  DESCRIPTION', ...items.map((i) => `${String(i.name).padEnd(w)}  ${typeof i.description === 'string' ? i.description : '-'}`)].join('\n')}\n`);
      }
      return 0;
    }
    default:
      throw new CliError('group takes a subcommand: add, remove or list (see vpcgw --help)');
  }
}

function readStdin(): Promise<string> {
  return new Promise((resolveText, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolveText(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

/** One line per user: name, enabled or disabled, groups, servers (all when none are named). */
function formatUsers(items: readonly Record<string, unknown>[]): string {
  if (items.length === 0) return '(none)\n';
  const w = Math.max(4, ...items.map((i) => String(i.name).length));
  const list = (v: unknown, none: string): string => (Array.isArray(v) && v.length ? v.join(',') : none);
  const lines = items.map((i) => `${String(i.name).padEnd(w)}  ${(i.disabled === true ? 'disabled' : 'enabled').padEnd(8)}  ${list(i.groups, '-').padEnd(16)}  ${list(i.servers, '(all)')}`);
  return `${'NAME'.padEnd(w)}  ${'STATE'.padEnd(8)}  ${'GROUPS'.padEnd(16)}  SERVERS\n${lines.join('\n')}\n`;
}

/** One line per resource: name, status, id. */
function formatList(items: readonly Record<string, unknown>[]): string {
  if (items.length === 0) return '(none)\n';
  const w = Math.max(4, ...items.map((i) => String(i.name).length));
  // VPC endpoints: their state is longer, and their address is what one looks for
  if (items.some((i) => 'ip' in i)) {
    const sw = Math.max(8, ...items.map((i) => String(i.status).length));
    return `${'NAME'.padEnd(w)}  ${'STATUS'.padEnd(sw)}  ${'IP'.padEnd(15)}  ID\n${items.map((i) =>
      `${String(i.name).padEnd(w)}  ${String(i.status).padEnd(sw)}  ${String(i.ip ?? '-').padEnd(15)}  ${String(i.id)}`).join('\n')}\n`;
  }
  return `${'NAME'.padEnd(w)}  ${'STATUS'.padEnd(8)}  ID\n${items.map((i) => `${String(i.name).padEnd(w)}  ${String(i.status).padEnd(8)}  ${String(i.id)}`).join('\n')}\n`;
}

/** `vpcgw apply -f FILE`: the plan, then (unless --dry-run) the daemon makes it so. */
async function applyFile(p: Parsed, io: CliIo): Promise<number> {
  expectArgs(p, 0, 'no arguments (the file comes with -f FILE)');
  if (!p.values.file) throw new CliError('apply needs -f FILE (see vpcgw --help)');
  const file = resolve(io.cwd, p.values.file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const path = await controlPathFor(p, io);
  const dryRun = p.values['dry-run'] === true;
  // the plan first, always: a dry run of the same document
  const planned = (await controlCall(path, 'apply', { text, source: file, baseDir: dirname(file), dryRun: true })) as { plan: PlanStep[] };
  io.stdout(formatPlan(planned.plan));
  if (dryRun || planned.plan.length === 0) return 0;
  const done = (await controlCall(path, 'apply', { text, source: file, baseDir: dirname(file), dryRun: false }, { timeoutMs: APPLY_TIMEOUT_MS })) as { plan: PlanStep[] };
  io.stdout(`applied: ${done.plan.length} change${done.plan.length === 1 ? '' : 's'}\n`);
  return 0;
}

const APPLY_TIMEOUT_MS = 60_000;

function formatPlan(plan: readonly PlanStep[]): string {
  if (plan.length === 0) return 'no changes: the gateway matches the file\n';
  const sign = { create: '+', update: '~', delete: '-' } as const;
  return `${plan.map((s) => `${sign[s.op]} ${s.op} ${s.kind} ${s.name}${s.restarts ? '  (the gateway restarts its packet path)' : ''}`).join('\n')}\n`;
}

/** --server NAME, else the gateway's only VPN server. */
async function serverFor(p: Parsed, path: string): Promise<string> {
  const given = p.values.server ?? [];
  if (given.length > 1) throw new CliError(`${p.command} takes one --server (see vpcgw --help)`);
  if (given[0] !== undefined) return given[0];
  const names = await serverNames(path);
  if (names.length !== 1) throw new CliError(names.length === 0 ? 'the gateway has no VPN servers' : `the gateway has several VPN servers (${names.join(', ')}): pick one with --server`);
  return names[0]!;
}

async function serverNames(path: string): Promise<string[]> {
  return ((await controlCall(path, 'resource.list', { kind: 'vpn-server' })) as { items: { name: string }[] }).items.map((i) => i.name);
}

/** `vpcgw clients [SERVER]`: the vpn-server `clients` action (GET /v1/vpn-servers/{id}/clients) of one or all servers. */
async function clientsCommand(p: Parsed, io: CliIo): Promise<number> {
  if (p.positionals.length > 1) throw new CliError('clients takes at most one argument: the VPN server name (see vpcgw --help)');
  const path = await controlPathFor(p, io);
  const servers = p.positionals[0] !== undefined ? [p.positionals[0]] : await serverNames(path);
  const rows: ClientRow[] = [];
  for (const server of servers) {
    const r = (await controlCall(path, 'resource.action', { kind: 'vpn-server', id: server, action: 'clients', query: {} })) as { json: { clients: Omit<ClientRow, 'server'>[] } };
    for (const c of r.json.clients) rows.push({ server, ...c });
  }
  io.stdout(p.values.json ? `${JSON.stringify(rows, null, 2)}\n` : formatClients(rows));
  return 0;
}

interface ClientRow {
  server: string;
  id: string;
  user: string;
  realAddress: string;
  virtualAddress: string | null;
  bytesIn: number;
  bytesOut: number;
  connectedSince: string;
}

/** One line per online client: server, user, real and virtual address, bytes in/out, since, id. */
export function formatClients(rows: readonly ClientRow[]): string {
  if (rows.length === 0) return '(no clients online)\n';
  const head = ['SERVER', 'USER', 'REAL ADDRESS', 'VIRTUAL', 'BYTES IN', 'BYTES OUT', 'SINCE', 'ID'];
  const cells = rows.map((r) => [r.server, r.user || '-', r.realAddress, r.virtualAddress ?? '-', String(r.bytesIn), String(r.bytesOut), r.connectedSince, r.id]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(w[i]!))).join('  ');
  return `${[head, ...cells].map(line).join('\n')}\n`;
}

/** `vpcgw pki issue-client USER --out DIR`: the daemon issues (client.issue), the CLI writes the files. */
async function pkiIssueClient(p: Parsed, io: CliIo): Promise<number> {
  if (p.positionals.length !== 2) throw new CliError('pki issue-client takes one argument: the user name (see vpcgw --help)');
  if (!p.values.out) throw new CliError('pki issue-client needs --out DIR (see vpcgw --help)');
  const user = p.positionals[1]!;
  const dir = resolve(io.cwd, p.values.out);
  const crt = join(dir, `${user}.crt`);
  const key = join(dir, `${user}.key`);
  for (const f of [crt, key]) if (existsSync(f)) throw new CliError(`${f} exists; not overwriting it`);
  const path = await controlPathFor(p, io);
  const r = (await controlCall(path, 'client.issue', { server: await serverFor(p, path), user })) as { cert: string; key: string };
  writeFileSync(key, r.key, { mode: 0o600, flag: 'wx' });
  writeFileSync(crt, r.cert, { mode: 0o600, flag: 'wx' });
  io.stdout(`${crt}, ${key}: written (CN ${user})\n`);
  return 0;
}

/** `vpcgw pki revoke-client USER|SERIAL`: onto the server's CRL (the daemon writes it), the user's session ends. */
async function pkiRevokeClient(p: Parsed, io: CliIo): Promise<number> {
  if (p.positionals.length !== 2) throw new CliError('pki revoke-client takes one argument: the user name or the certificate serial (see vpcgw --help)');
  const path = await controlPathFor(p, io);
  const r = (await controlCall(path, 'client.revoke', { server: await serverFor(p, path), target: p.positionals[1]! })) as {
    server: string; revoked: { serial: string; user: string }[]; crl: string; disconnected: string[];
  };
  if (p.values.json) {
    io.stdout(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  for (const c of r.revoked) io.stdout(`${r.server}: certificate ${c.serial}${c.user ? ` (${c.user})` : ''} revoked\n`);
  for (const u of r.disconnected) io.stdout(`${r.server}: ${u} disconnected\n`);
  io.stdout(`CRL: ${r.crl}\n`);
  return 0;
}

/** `vpcgw pki`: tls-crypt / tls-auth keys, and the client profile with the key inline. */
async function pki(p: Parsed, io: CliIo): Promise<number> {
  const { generateStaticKeyFile, generateTlsCryptV2ClientKeyFile, generateTlsCryptV2ServerKeyFile } = await import('./gateway/pki.js');
  const sub = p.positionals[0];
  if (sub === 'tls-crypt' || sub === 'tls-auth') {
    if (p.positionals.length !== 2) throw new CliError(`pki ${sub} takes one argument: the key file to write (see vpcgw --help)`);
    const file = resolve(io.cwd, p.positionals[1]!);
    if (existsSync(file)) throw new CliError(`${file} exists; not overwriting a key`);
    writeFileSync(file, generateStaticKeyFile(), { mode: 0o600, flag: 'wx' });
    io.stdout(`${file}: new ${sub} key (set vpnServers[].${sub === 'tls-crypt' ? 'tlsCrypt' : 'tlsAuth.key'} to it, then vpcgw pki profile)\n`);
    return 0;
  }
  if (sub === 'tls-crypt-v2-server' || sub === 'tls-crypt-v2-client') {
    const server = sub === 'tls-crypt-v2-server';
    if (p.positionals.length !== (server ? 2 : 3)) throw new CliError(`pki ${sub} takes ${server ? 'one argument: the key file to write' : 'two arguments: the server key and the client key file to write'} (see vpcgw --help)`);
    const file = resolve(io.cwd, p.positionals.at(-1)!);
    if (existsSync(file)) throw new CliError(`${file} exists; not overwriting a key`);
    const serverKeyPath = server ? '' : resolve(io.cwd, p.positionals[1]!);
    const text = server ? generateTlsCryptV2ServerKeyFile() : generateTlsCryptV2ClientKeyFile(readFileSync(serverKeyPath, 'utf8'), serverKeyPath);
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    io.stdout(`${file}: new ${sub} key\n`);
    return 0;
  }
  if (sub === 'profile') {
    if (p.positionals.length !== 1) throw new CliError('pki profile takes no arguments (see vpcgw --help)');
    const configPath = p.values.config ? resolve(io.cwd, p.values.config) : join(defaultDataDir(io.env, io.cwd), 'vpcgw.yaml');
    const cfg = await loadConfig(configPath);
    const dir = join(cfg.gateway.dataDir, 'pki');
    const server = cfg.vpnServers[0];
    if (!server) throw new CliError(`${configPath} has no vpnServers`);
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    // keep the host of the existing profile's "remote" line (the user may have set it)
    const old = existsSync(join(dir, 'client1.ovpn')) ? read('client1.ovpn') : '';
    const host = /^remote (\S+)/m.exec(old)?.[1] ?? '127.0.0.1';
    const { profileWithCertificate } = await import('./gateway/client-profile.js');
    const profile = profileWithCertificate(cfg, server.name, { cert: read('client1.crt'), key: read('client1.key') }, { host }).text;
    writeFileSync(join(dir, 'client1.ovpn'), profile, { mode: 0o600 });
    io.stdout(`${join(dir, 'client1.ovpn')}: written${server.tlsCrypt ? ' (with tls-crypt)' : server.tlsAuth ? ' (with tls-auth)' : server.tlsCryptV2 ? ' (with a new tls-crypt-v2 client key)' : ''}\n`);
    return 0;
  }
  throw new CliError('pki takes tls-crypt FILE, tls-auth FILE, tls-crypt-v2-server|client, profile, issue-client USER or revoke-client USER|SERIAL (see vpcgw --help)');
}

async function start(p: Parsed, io: CliIo, gatewayOptions: Partial<GatewayOptions>): Promise<number> {
  // checked first, so a non-root run creates nothing and says exactly one thing
  if (!io.isRoot()) {
    throw new CliError('start must run as root (it creates a TUN device, binds UDP 500/4500 and installs routes)', 'ERR_NOT_ROOT');
  }
  const [{ runGateway }, { ipsecController }, { sslVpnServers }, { ensureDefaultConfig, nextSteps }, { createRootLogger, resolveLogLevel }] = await Promise.all([
    import('./gateway/run.js'),
    import('./gateway/ipsec.js'),
    import('./gateway/vpn-servers.js'),
    import('./gateway/default-config.js'),
    import('./gateway/log.js'),
  ]);
  let configPath: string;
  let created = false;
  if (p.values.config) {
    configPath = resolve(io.cwd, p.values.config);
  } else {
    const d = ensureDefaultConfig(defaultDataDir(io.env, io.cwd));
    configPath = d.path;
    created = d.created;
  }
  const fileCfg: GatewayConfig = await loadConfig(configPath);
  const log = createRootLogger({ level: resolveLogLevel(fileCfg.gateway.logLevel, io.env), base: { gw: fileCfg.gateway.name } });
  const controlPath = p.values.control ? resolve(io.cwd, p.values.control) : join(fileCfg.gateway.dataDir, CONTROL_SOCKET_NAME);
  // A signal during startup (the control socket may already answer) must not kill the process
  // before it can undo what it set up: it is remembered, and the gateway stops once it has started.
  let earlySignal: NodeJS.Signals | null = null;
  const onEarlySignal = (sig: NodeJS.Signals): void => {
    if (earlySignal === null) log.info({ signal: sig }, 'stopping once started');
    earlySignal = sig;
  };
  process.on('SIGTERM', onEarlySignal);
  process.on('SIGINT', onEarlySignal);
  let running: RunningGateway;
  try {
    running = await runGateway({
      configPath,
      fileConfig: fileCfg,
      explicit: p.values.config !== undefined,
      controlPath,
      log,
      gatewayOptions: { tunnels: ipsecController, vpnServers: sslVpnServers, ...gatewayOptions },
    });
  } catch (e) {
    const code = e instanceof VpnError ? e.code : 'ERR_START';
    log.error({ code, err: oneLine(e) }, 'gateway failed to start');
    throw new CliError(`cannot start: ${oneLine(e)}`, 'ERR_START');
  } finally {
    process.off('SIGTERM', onEarlySignal);
    process.off('SIGINT', onEarlySignal);
  }
  const gw = running;
  const config = running.config;
  io.stdout(`${nextSteps(config, { controlPath, created, apiUrl: running.apiUrl, explicit: p.values.config !== undefined })}\n`);

  return await new Promise<number>((resolveExit) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: exiting now');
        resolveExit(1);
        return;
      }
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      gw.stop().then(
        () => resolveExit(0),
        (e: unknown) => {
          log.error({ err: oneLine(e) }, 'stop failed');
          resolveExit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    if (earlySignal !== null) onSignal(earlySignal);
    // the shell's last line of defence: a bug in one SA must not take the whole gateway down
    process.on('uncaughtException', (e) => log.error({ err: oneLine(e), stack: e.stack }, 'uncaught exception (continuing)'));
    process.on('unhandledRejection', (e) => log.error({ err: oneLine(e) }, 'unhandled rejection (continuing)'));
  });
}

function isMain(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  // stdout into a pipe is written asynchronously: exit once everything queued has been written, or a
  // large `status --json` (a thousand tunnels) would be cut short
  void main(process.argv.slice(2)).then((code) => process.stdout.write('', () => process.exit(code)));
}


/**
 * `vpcgw disconnect USER`: ends every session of that user on every VPN server (the sessions come
 * from `status`, each is closed through the control method "disconnect"). ERR_NOT_FOUND when the
 * user has no session.
 */
async function disconnectUser(p: Parsed, io: CliIo, user: string): Promise<number> {
  const path = await controlPathFor(p, io);
  const st = (await controlCall(path, 'status', {})) as { vpnServers?: { name: string; sessions?: { id: string; user: string }[] }[] };
  const done: { server: string; client: string; user: string }[] = [];
  for (const v of st.vpnServers ?? []) {
    for (const s of v.sessions ?? []) {
      if (s.user !== user) continue;
      done.push((await controlCall(path, 'disconnect', { server: v.name, client: s.id, halt: p.values.halt === true })) as { server: string; client: string; user: string });
    }
  }
  if (done.length === 0) throw new CliError(`user ${user} has no session on any VPN server`);
  if (p.values.json) io.stdout(`${JSON.stringify(done)}\n`);
  else for (const r of done) io.stdout(`${r.server}: client ${r.client} (${r.user}) disconnected\n`);
  return 0;
}
