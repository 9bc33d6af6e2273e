/**
 * The status document `vpcgw status --json` prints and the control method "status" returns:
 *
 *   { "gateway": {...}, "connections": [ { "name", "state", "children": [ { "state", "spiIn", "spiOut",
 *     "bytesIn", "bytesOut", "packetsIn", "packetsOut" } ] } ], "vpnServers": [...] }
 *
 * SPIs print as "0x" + 8 hex digits, as in the logs and `swanctl --list-sas`. Everything here is plain JSON data.
 */

export type ConnectionState = 'DOWN' | 'CONNECTING' | 'ESTABLISHED' | 'REKEYING' | 'DELETING';

export interface ChildSaStatus {
  state: string;
  spiIn: string;
  spiOut: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  localTs?: string[];
  remoteTs?: string[];
  /** the negotiated algorithms, strongSwan's log format ("AES_GCM_16_128/NO_EXT_SEQ") */
  proposal?: string;
  /** when the CHILD_SA was installed (ISO 8601), and seconds since */
  installedAt?: string;
  ageSec?: number;
}

export interface ConnectionStatus {
  name: string;
  state: ConnectionState;
  /** The peer as ip:port once known. */
  peer?: string;
  /** IKE SA as spiI/spiR in hex. */
  ikeSa?: string;
  /** Why the connection is in its state (last error, "IKE not available"). */
  reason?: string;
  children: ChildSaStatus[];
  /** when the current IKE SA was established (ISO 8601); only while it is */
  establishedAt?: string;
  /** seconds since then */
  ikeSaAgeSec?: number;
  /** the IKE SA's negotiated algorithms ("AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519") */
  ikeProposal?: string;
  /** IKE SA rekeys since the gateway started (src/ike/ike-manager.ts IkeConnectionCounters) */
  ikeRekeys?: number;
  /** CHILD_SA rekeys since the gateway started */
  childRekeys?: number;
  /** unanswered liveness checks (DPD) that cleared the IKE SA */
  dpdFailures?: number;
  /** the last failed negotiation of the connection (cleared when its IKE SA comes up) */
  lastError?: ConnectionError;
}

/**
 * Why the connection's last negotiation failed (src/ike/failure.ts): `code` is stable (e.g.
 * IKE_PROPOSAL_MISMATCH, AUTH_REJECTED_BY_PEER, TS_UNACCEPTABLE, PEER_ID_MISMATCH, NO_ANSWER),
 * `message` says what happened, `hint` the suggested fix, `at` when (ISO 8601).
 */
export interface ConnectionError {
  code: string;
  message: string;
  hint: string;
  at: string;
}

export interface VpnServerStatus {
  name: string;
  state: 'DOWN' | 'LISTENING';
  protocols: string[];
  port: number;
  clients: number;
  reason?: string;
  /** sessions not authenticated yet (capped by limits.maxHalfOpen) */
  halfOpen?: number;
  tcpConnections?: number;
  /** the server's counters: refusals, drops, stateless-start replies, timeouts */
  counters?: Record<string, number>;
  /** clients refused before authentication since start (bad certificate, no common cipher, ...) */
  authFailures?: number;
  /** data channel bytes from / to clients since start, closed sessions included */
  bytesIn?: number;
  bytesOut?: number;
  /** online clients: user, real and virtual address, bytes in/out, connected since */
  sessions?: VpnClientStatus[];
}

export interface VpnClientStatus {
  /** the session's id on its server (POST /v1/vpn-servers/{id}/disconnect takes it) */
  id: string;
  user: string;
  protocol: string;
  realAddress: string;
  virtualAddress: string | null;
  state: string;
  cipher: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  connectedSince: string;
}

export interface IoCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  errors: number;
}

export interface GatewayInfo {
  name: string;
  pid: number;
  startedAt: string;
  uptimeSec: number;
  config: string;
  publicAddresses: string[];
  vpcSubnets: string[];
  tun: { name: string; mtu: number } & IoCounters;
  udp: ({ address: string; port: number } & IoCounters)[];
  routes: string[];
  ike: 'available' | 'not available';
  dataPlane: 'native' | 'typescript' | 'available' | 'not available';
  /** The HTTPS management API, when it runs: its base URL and the SHA-256 fingerprint of its certificate. */
  api?: { url: string; fingerprintSha256: string };
}

/**
 * The IKE responder's load: half-open IKE SAs (no IKE_AUTH yet), COOKIEs sent, and IKE input
 * dropped before reaching an SA, by reason (src/ike/ike-manager.ts IkeCounters).
 */
export interface IkeResponderStatus {
  halfOpen: number;
  halfOpenSources: number;
  cookiesSent: number;
  drops: Record<string, number>;
}

/**
 * A VPC endpoint as the data path sees it: its approval state and the policy stage's counters
 * (src/vpcep/policy.ts EndpointCounters; zero while the data plane has no policy stage).
 */
export interface EndpointStatus {
  name: string;
  service: string;
  /** interface (NAT through `address`) or gateway (route type) */
  type: string;
  state: 'PENDING_ACCEPTANCE' | 'ACCEPTED' | 'REJECTED';
  address: string | null;
  dnsName: string | null;
  /** flows alive now, and created since the endpoint appeared */
  flows: number;
  flowsCreated: number;
  /** client → backend */
  packetsIn: number;
  bytesIn: number;
  /** backend → client */
  packetsOut: number;
  bytesOut: number;
  /** drops attributed to the endpoint, by reason */
  drops: Record<string, number>;
}

/** The policy stage as a whole: drops by reason (every reason present) and flows alive. */
export interface PolicyStatus {
  drops: Record<string, number>;
  flows: number;
  /** aclDenied drops by origin (`connection:NAME` or `vpnServer:NAME[groups]`) */
  aclDenied?: Record<string, number>;
}

export interface GatewayStatus {
  gateway: GatewayInfo;
  /** present when IKE runs */
  ikeResponder?: IkeResponderStatus;
  connections: ConnectionStatus[];
  vpnServers: VpnServerStatus[];
  /** VPC endpoints in config order (absent in documents of gateways that predate them) */
  endpoints?: EndpointStatus[];
  /** the data path's policy stage, when the data plane has one */
  policy?: PolicyStatus;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function uptime(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return `${d ? `${d}d ` : ''}${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

/** The human-readable `vpcgw status` text. */
export function formatStatus(st: GatewayStatus): string {
  const g = st.gateway;
  const out: string[] = [];
  out.push(`gateway ${g.name}: up ${uptime(g.uptimeSec)}, pid ${g.pid}, config ${g.config}`);
  out.push(`  public addresses: ${g.publicAddresses.join(', ') || '(none)'}    vpc subnets: ${g.vpcSubnets.join(', ') || '(none)'}`);
  out.push(`  tun ${g.tun.name} mtu ${g.tun.mtu}: rx ${g.tun.rxPackets} pkts / ${bytes(g.tun.rxBytes)}, tx ${g.tun.txPackets} pkts / ${bytes(g.tun.txBytes)}`);
  for (const u of g.udp) out.push(`  udp ${u.address}:${u.port}: rx ${u.rxPackets} pkts, tx ${u.txPackets} pkts, errors ${u.errors}`);
  out.push(`  ike: ${g.ike}, data plane: ${g.dataPlane}`);
  if (g.api) out.push(`  management api: ${g.api.url}/v1  (certificate sha256 ${g.api.fingerprintSha256})`);
  const r = st.ikeResponder;
  if (r) {
    const drops = Object.entries(r.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
    out.push(`  ike responder: ${r.halfOpen} half-open from ${r.halfOpenSources} addresses, ${r.cookiesSent} cookies sent, drops: ${drops || 'none'}`);
  }
  out.push(`connections (${st.connections.length}):`);
  if (st.connections.length === 0) out.push('  (none configured: create one through the API, or vpcgw apply -f FILE)');
  for (const c of st.connections) {
    const extra = [c.peer && `peer ${c.peer}`, c.ikeSa && `ike ${c.ikeSa}`, c.reason].filter(Boolean).join(', ');
    out.push(`  ${c.name}: ${c.state}${extra ? ` (${extra})` : ''}`);
    for (const ch of c.children) {
      out.push(`    child ${ch.spiIn}_i ${ch.spiOut}_o ${ch.state}: in ${bytes(ch.bytesIn)} / ${ch.packetsIn} pkts, out ${bytes(ch.bytesOut)} / ${ch.packetsOut} pkts`);
      if (ch.localTs && ch.remoteTs) out.push(`      ${ch.localTs.join(' ')} === ${ch.remoteTs.join(' ')}`);
    }
    if (c.lastError) out.push(`    last error ${c.lastError.at}: ${c.lastError.message} [${c.lastError.code}]`);
  }
  if (st.vpnServers.length) {
    out.push(`vpn servers (${st.vpnServers.length}):`);
    for (const s of st.vpnServers) {
      out.push(`  ${s.name}: ${s.state} ${s.protocols.join('+')}/${s.port}, ${s.clients} clients${s.halfOpen !== undefined ? `, ${s.halfOpen} half-open` : ''}${s.reason ? ` (${s.reason})` : ''}`);
      const c = s.counters;
      if (c) {
        const pre = ['resetReplies', 'resetRateDrops', 'badEchoDrops', 'wrapDrops', 'garbageDrops', 'halfOpenRefusals', 'halfOpenTimeouts', 'tcpRefusals', 'tcpFirstFrameTimeouts']
          .filter((k) => (c[k] ?? 0) > 0)
          .map((k) => `${k} ${c[k]}`);
        if (pre.length) out.push(`    before auth: ${pre.join(', ')}`);
      }
      for (const c of s.sessions ?? []) {
        out.push(`    ${c.user} ${c.virtualAddress ?? '-'} from ${c.realAddress} (${c.protocol}, ${c.cipher}) ${c.state}, in ${c.bytesIn} B / out ${c.bytesOut} B, since ${c.connectedSince}`);
      }
    }
  }
  const eps = st.endpoints ?? [];
  if (eps.length) {
    out.push(`vpc endpoints (${eps.length}):`);
    for (const e of eps) {
      const where = e.address ? ` ${e.address}${e.dnsName ? ` (${e.dnsName})` : ''}` : ' (gateway type)';
      const drops = Object.entries(e.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
      out.push(`  ${e.name} -> ${e.service}:${where} ${e.state}, ${e.flows} flows (${e.flowsCreated} created), `
        + `in ${e.packetsIn} pkts / ${bytes(e.bytesIn)}, out ${e.packetsOut} pkts / ${bytes(e.bytesOut)}${drops ? `, drops: ${drops}` : ''}`);
    }
  }
  const pol = st.policy;
  if (pol) {
    const drops = Object.entries(pol.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
    out.push(`policy: ${pol.flows} flows, drops: ${drops || 'none'}`);
  }
  return out.join('\n');
}

/** What `vpcgw diagnose NAME --json` prints: the state, the last error and the suggested fix. */
export interface Diagnosis {
  name: string;
  state: ConnectionState;
  peer?: string;
  ikeSa?: string;
  /** CHILD_SAs installed now (traffic passes only with one) */
  children: number;
  reason?: string;
  lastError?: ConnectionError;
  /** one sentence: what to change, or that nothing needs to */
  suggestedFix: string;
}

/** The diagnosis of one connection from its status entry. */
export function diagnose(c: ConnectionStatus): Diagnosis {
  const children = c.children.filter((ch) => ch.state === 'INSTALLED').length;
  let fix: string;
  if (c.lastError) fix = c.lastError.hint;
  else if (c.state === 'ESTABLISHED' && children > 0) fix = 'none: the tunnel is up';
  else if (c.state === 'CONNECTING' || c.state === 'REKEYING') fix = 'none yet: a negotiation is under way, run diagnose again in a few seconds';
  else fix = 'start it with `vpcgw initiate NAME` (or startAction: start), or have the peer initiate';
  return {
    name: c.name,
    state: c.state,
    ...(c.peer ? { peer: c.peer } : {}),
    ...(c.ikeSa ? { ikeSa: c.ikeSa } : {}),
    children,
    ...(c.reason ? { reason: c.reason } : {}),
    ...(c.lastError ? { lastError: { ...c.lastError } } : {}),
    suggestedFix: fix.replace('NAME', c.name),
  };
}

/** `vpcgw diagnose NAME`: the diagnosis in the order an operator reads it. */
export function formatDiagnosis(d: Diagnosis): string {
  const out: string[] = [];
  const where = [d.peer && `peer ${d.peer}`, d.ikeSa && `ike ${d.ikeSa}`].filter(Boolean).join(', ');
  out.push(`connection ${d.name}: ${d.state}${where ? ` (${where})` : ''}`);
  if (d.state === 'ESTABLISHED') out.push(`  children: ${d.children} installed${d.children === 0 ? ' (no traffic passes)' : ''}`);
  if (d.lastError) {
    out.push(`  last error (${d.lastError.at}): ${d.lastError.message}`);
    out.push(`  code: ${d.lastError.code}`);
  } else if (d.reason) {
    out.push(`  reason: ${d.reason}`);
  } else {
    out.push('  last error: none');
  }
  out.push(`  suggested fix: ${d.suggestedFix}`);
  return out.join('\n');
}
