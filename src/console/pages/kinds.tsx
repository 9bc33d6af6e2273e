/**
 * What each kind adds to the generic pages: columns, actions (src/gateway/resources.ts lists them)
 * and detail sections: a connection's SAs, last error and traffic; a server's online clients; a
 * user's profile download; an endpoint service's pending connections.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import * as api from '../api.js';
import { TrafficChart } from '../chart.js';
import { useLive } from '../live.js';
import { Confirm, Dialog, Link, Status, Table, age, bytes, errorText } from '../ui.js';
import type { DetailProps, KindPage } from './resource.js';
import { useList } from './resource.js';

type Row = Record<string, unknown>;
const str = (v: unknown) => (v === undefined || v === null || v === '' ? '-' : String(v));

// ---- VPN connections ----

/** The SAs of a connection view, whatever the server calls the list (children, child_sas, sas). */
function childSas(v: api.View): Row[] {
  for (const k of ['child_sas', 'children', 'sas']) if (Array.isArray(v[k])) return v[k] as Row[];
  return [];
}

const pick = (r: Row, ...keys: string[]) => {
  for (const k of keys) if (r[k] !== undefined && r[k] !== null) return r[k];
  return undefined;
};

function algorithms(r: Row): string {
  const direct = pick(r, 'algorithms', 'proposal', 'cipher');
  if (typeof direct === 'string') return direct;
  if (direct && typeof direct === 'object') return Object.values(direct as Row).filter(Boolean).join('/');
  return [pick(r, 'encryption', 'encr'), pick(r, 'integrity', 'integ'), pick(r, 'dhGroup', 'dh_group')].filter(Boolean).join('/') || '-';
}

function ConnectionActions({ view, reload, notify }: DetailProps) {
  const [confirm, setConfirm] = useState<null | 'terminate' | 'regenerate'>(null);
  const [psk, setPsk] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (label: string, f: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await f();
      notify({ kind: 'ok', text: label });
      reload();
    } catch (e) {
      notify({ kind: 'error', text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };
  const up = view.status === 'ACTIVE';
  return (
    <>
      <button type="button" disabled={busy} onClick={() => run('Initiate sent: the state follows here.', () => api.action('vpn-connections', view.name, 'initiate'))}>Initiate</button>
      <button type="button" disabled={busy || !up} onClick={() => run('Rekeying the CHILD_SA.', () => api.action('vpn-connections', view.name, 'rekey', 'POST', { sa: 'child' }))}>Rekey</button>
      <button type="button" disabled={busy || !up} onClick={() => run('Rekeying the IKE SA.', () => api.action('vpn-connections', view.name, 'rekey', 'POST', { sa: 'ike' }))}>Rekey IKE</button>
      <button type="button" class="danger" disabled={busy} onClick={() => setConfirm('terminate')}>Terminate</button>
      <button type="button" onClick={() => api.download(`/v1/vpn-connections/${encodeURIComponent(view.name)}/peer-config?format=swanctl`, 'GET', `${view.name}.swanctl.conf`).catch((e: unknown) => notify({ kind: 'error', text: errorText(e) }))}>
        Download peer config
      </button>
      <button type="button" onClick={() => api.download(`/v1/vpn-connections/${encodeURIComponent(view.name)}/peer-config?format=libreswan`, 'GET', `${view.name}.ipsec.conf`).catch((e: unknown) => notify({ kind: 'error', text: errorText(e) }))}>
        Libreswan config
      </button>
      <button type="button" class="danger" onClick={() => setConfirm('regenerate')}>Regenerate PSK</button>
      {confirm === 'terminate' && (
        <Confirm
          title={`Terminate ${view.name}?`}
          message="The tunnel goes down now (IKE DELETE to the peer); traffic through it stops. It stays configured and can be initiated again."
          confirmLabel="Terminate"
          onClose={() => setConfirm(null)}
          onConfirm={async () => {
            await api.action('vpn-connections', view.name, 'terminate');
            notify({ kind: 'ok', text: 'Terminated.' });
            reload();
          }}
        />
      )}
      {confirm === 'regenerate' && (
        <Confirm
          title={`Regenerate the PSK of ${view.name}?`}
          message="A new pre-shared key replaces the current one at once: the customer gateway must be given the new key (download the peer config again), or the tunnel will not come back after its next negotiation."
          confirmLabel="Regenerate"
          onClose={() => setConfirm(null)}
          onConfirm={async () => {
            const r = await api.action<{ psk: string }>('vpn-connections', view.name, 'regenerate-psk');
            setPsk(r.psk);
            reload();
          }}
        />
      )}
      {psk !== null && (
        <Dialog title="New pre-shared key" onClose={() => setPsk(null)}>
          <p>This key is shown once. Copy it to the customer gateway now.</p>
          <label for="new-psk">Pre-shared key</label>
          <input id="new-psk" class="secret" readOnly value={psk} onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
          <div class="buttons">
            <button type="button" onClick={() => navigator.clipboard?.writeText(psk).catch(() => undefined)}>Copy</button>
            <button type="button" class="primary" autoFocus onClick={() => setPsk(null)}>Done</button>
          </div>
        </Dialog>
      )}
    </>
  );
}

function ConnectionDetail({ view }: DetailProps) {
  const err = view.last_error as { code?: string; message?: string; hint?: string; at?: string } | undefined;
  const sas = childSas(view);
  const ike = pick(view, 'ike_sa', 'ikeSa') as Row | string | undefined;
  return (
    <>
      {err && (
        <section class="last-error" aria-labelledby="le">
          <h2 id="le">Last error</h2>
          <p><strong>{str(err.message)}</strong></p>
          {err.hint && <p>Suggested fix: {err.hint}</p>}
          <p class="hint">{str(err.code)}{err.at ? ` at ${new Date(err.at).toLocaleString()}` : ''}</p>
        </section>
      )}
      <section>
        <h2>Security associations</h2>
        <p>
          IKE state <Status value={view.ike_state ?? 'DOWN'} />
          {ike && typeof ike === 'object' ? (
            <> IKE SA <code>{str(pick(ike, 'spis', 'spi', 'id'))}</code> {algorithms(ike)}, up {age(pick(ike, 'established_at', 'establishedAt'))}</>
          ) : ike ? <> IKE SA <code>{ike}</code></> : null}
          {typeof pick(view, 'established_at', 'establishedAt') === 'string' && <> established {age(pick(view, 'established_at', 'establishedAt'))} ago</>}
        </p>
        <Table
          caption="CHILD_SAs"
          rows={sas}
          rowKey={(r) => `${str(pick(r, 'spiIn', 'spi_in'))}`}
          empty="No CHILD_SA installed."
          cols={[
            { title: 'State', cell: (r) => <Status value={r.state} /> },
            { title: 'SPI in', cell: (r) => <code class="spi-in">{str(pick(r, 'spiIn', 'spi_in'))}</code> },
            { title: 'SPI out', cell: (r) => <code class="spi-out">{str(pick(r, 'spiOut', 'spi_out'))}</code> },
            { title: 'Algorithms', cell: (r) => algorithms(r) },
            { title: 'Selectors', cell: (r) => `${str((pick(r, 'local_ts', 'localTs') as string[] | undefined)?.join(', '))} ⇄ ${str((pick(r, 'remote_ts', 'remoteTs') as string[] | undefined)?.join(', '))}` },
            { title: 'Age', cell: (r) => age(pick(r, 'established_at', 'establishedAt', 'installedAt', 'installed_at')) },
            { title: 'Bytes in', cell: (r) => bytes(pick(r, 'bytesIn', 'bytes_in')) },
            { title: 'Bytes out', cell: (r) => bytes(pick(r, 'bytesOut', 'bytes_out')) },
          ]}
        />
      </section>
      <TrafficChart kind="vpn-connection" name={view.name} title="Traffic" />
    </>
  );
}

// ---- VPN servers and their clients ----

export interface Client {
  id: string;
  user: string;
  protocol: string;
  realAddress: string;
  virtualAddress: string | null;
  cipher: string;
  bytesIn: number;
  bytesOut: number;
  connectedSince: string;
}

export function useClients(server: string | null): { clients: Client[]; reload: () => void } {
  const [clients, setClients] = useState<Client[]>([]);
  const reload = useCallback(() => {
    if (!server) return;
    api.action<{ clients: Client[] }>('vpn-servers', server, 'clients', 'GET').then((r) => setClients(r.clients), () => setClients([]));
  }, [server]);
  useEffect(reload, [reload]);
  useLive(['vpn-server', 'vpn-server-client', 'client', 'user'], reload);
  return { clients, reload };
}

export function ClientTable({ server, clients, reload }: { server: string; clients: Client[]; reload: () => void }) {
  const [victim, setVictim] = useState<Client | null>(null);
  const [chart, setChart] = useState<Client | null>(null);
  return (
    <>
      <Table
        caption={`Clients of ${server}`}
        rows={clients}
        rowKey={(c) => c.id}
        empty="No client online."
        cols={[
          { title: 'User', cell: (c) => c.user },
          { title: 'Address', cell: (c) => `${c.virtualAddress ?? '-'} (from ${c.realAddress})` },
          { title: 'Protocol', cell: (c) => `${c.protocol} ${c.cipher}` },
          { title: 'Connected', cell: (c) => age(c.connectedSince) },
          { title: 'In / out', cell: (c) => `${bytes(c.bytesIn)} / ${bytes(c.bytesOut)}` },
          {
            title: 'Actions',
            cell: (c) => (
              <span class="row-actions">
                <button type="button" onClick={() => setChart(chart?.id === c.id ? null : c)} aria-expanded={chart?.id === c.id}>Traffic</button>
                <button type="button" class="danger" onClick={() => setVictim(c)}>Disconnect</button>
              </span>
            ),
          },
        ]}
      />
      {chart && <TrafficChart kind="vpn-server-client" name={`${server}/${chart.user}`} title={`Traffic of ${chart.user} on ${server}`} />}
      {victim && (
        <Confirm
          title={`Disconnect ${victim.user}?`}
          message={`The session from ${victim.realAddress} is closed now; the client may reconnect.`}
          confirmLabel="Disconnect"
          onClose={() => setVictim(null)}
          onConfirm={async () => {
            await api.action('vpn-servers', server, 'disconnect', 'POST', { client: victim.id });
            reload();
          }}
        />
      )}
    </>
  );
}

/** Asks for a user (and the address clients dial) and downloads their ready profile (client-config). */
function ProfileDialog({ server, user, onClose }: { server?: string; user?: string; onClose: () => void }) {
  const servers = useList('vpn-servers', ['vpn-server']).items ?? [];
  const users = useList('users', ['user']).items ?? [];
  const [s, setS] = useState(server ?? '');
  const [u, setU] = useState(user ?? '');
  const [host, setHost] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const srv = s || servers[0]?.name || '';
  const usr = u || users[0]?.name || '';
  const go = async (e: Event) => {
    e.preventDefault();
    setErr(null);
    try {
      await api.download(`/v1/vpn-servers/${encodeURIComponent(srv)}/client-config`, 'POST', `${usr}-${srv}.ovpn`, { user: usr, ...(host ? { host } : {}) });
      onClose();
    } catch (x) {
      setErr(errorText(x));
    }
  };
  return (
    <Dialog title="Download a client profile" onClose={onClose}>
      <form onSubmit={go} class="form">
        {err && <p class="error" role="alert">{err}</p>}
        <div class="field">
          <label for="p-server">VPN server</label>
          <select id="p-server" value={srv} disabled={!!server} onChange={(e) => setS((e.currentTarget as HTMLSelectElement).value)}>
            {servers.map((x) => <option key={x.name} value={x.name}>{x.name}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="p-user">User</label>
          <select id="p-user" value={usr} disabled={!!user} onChange={(e) => setU((e.currentTarget as HTMLSelectElement).value)}>
            {users.map((x) => <option key={x.name} value={x.name}>{x.name}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="p-host">Address clients dial</label>
          <input id="p-host" value={host} placeholder="default: the server's listen or public address" onInput={(e) => setHost((e.currentTarget as HTMLInputElement).value)} />
        </div>
        <div class="buttons">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={!srv || !usr}>Download profile</button>
        </div>
      </form>
    </Dialog>
  );
}

function ServerActions({ view, notify }: DetailProps) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" onClick={() => api.download(`/v1/vpn-servers/${encodeURIComponent(view.name)}/client-profile`, 'GET', `${view.name}.ovpn`).catch((e: unknown) => notify({ kind: 'error', text: errorText(e) }))}>
        Download profile (no key)
      </button>
      <button type="button" onClick={() => setOpen(true)}>Download user profile</button>
      {open && <ProfileDialog server={view.name} onClose={() => setOpen(false)} />}
    </>
  );
}

function ServerDetail({ view }: DetailProps) {
  const { clients, reload } = useClients(view.name);
  return (
    <section>
      <h2>Online clients</h2>
      <ClientTable server={view.name} clients={clients} reload={reload} />
    </section>
  );
}

function UserActions({ view }: DetailProps) {
  const [open, setOpen] = useState(false);
  const servers = (Array.isArray(view.servers) ? view.servers : []) as string[];
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>Download profile</button>
      {open && <ProfileDialog user={view.name} server={servers.length === 1 ? servers[0] : undefined} onClose={() => setOpen(false)} />}
    </>
  );
}

// ---- endpoint services ----

interface EpConnection {
  endpoint_id: string;
  endpoint_name: string;
  status: string;
  ip: string | null;
  dns_names: string[];
  description: string | null;
}

function ServiceDetail({ view, notify }: DetailProps) {
  const [conns, setConns] = useState<EpConnection[]>([]);
  const [victim, setVictim] = useState<EpConnection | null>(null);
  const reload = useCallback(() => {
    api.action<{ connections: EpConnection[] }>('vpc-endpoint-services', view.name, 'connections', 'GET').then((r) => setConns(r.connections), (e: unknown) => notify({ kind: 'error', text: errorText(e) }));
  }, [view.name]);
  useEffect(reload, [reload]);
  useLive(['vpc-endpoint', 'vpc-endpoint-service'], reload);
  const decide = (c: EpConnection, verb: 'receive' | 'reject') =>
    api.action('vpc-endpoint-services', view.name, 'connections/action', 'POST', { action: verb, endpoints: [c.endpoint_id] }).then(reload);
  return (
    <section>
      <h2>Connections</h2>
      <Table
        caption={`Endpoints of ${view.name}`}
        rows={conns}
        rowKey={(c) => c.endpoint_id}
        empty="No endpoint uses this service."
        cols={[
          { title: 'Endpoint', cell: (c) => <Link href={`/vpc-endpoints/${encodeURIComponent(c.endpoint_name)}`}>{c.endpoint_name}</Link> },
          { title: 'State', cell: (c) => <Status value={c.status} /> },
          { title: 'Address', cell: (c) => `${c.ip ?? '-'} ${c.dns_names.join(' ')}` },
          { title: 'Description', cell: (c) => str(c.description) },
          {
            title: 'Decision',
            cell: (c) => (
              <span class="row-actions">
                <button type="button" disabled={c.status === 'ACCEPTED'} onClick={() => decide(c, 'receive').catch((e: unknown) => notify({ kind: 'error', text: errorText(e) }))}>Accept</button>
                <button type="button" class="danger" disabled={c.status === 'REJECTED'} onClick={() => setVictim(c)}>Reject</button>
              </span>
            ),
          },
        ]}
      />
      {victim && (
        <Confirm
          title={`Reject ${victim.endpoint_name}?`}
          message="The endpoint's flows are cut at once and it cannot reach the service until it is accepted."
          confirmLabel="Reject"
          onClose={() => setVictim(null)}
          onConfirm={() => decide(victim, 'reject')}
        />
      )}
    </section>
  );
}

function EndpointDetail({ view }: DetailProps) {
  return <TrafficChart kind="vpc-endpoint" name={view.name} title="Traffic" />;
}

export const PAGES: readonly KindPage[] = [
  {
    kind: 'customer-gateway',
    collection: 'customer-gateways',
    title: 'Customer gateways',
    singular: 'customer gateway',
    columns: [
      { title: 'Address', cell: (v) => str(v.address) },
      { title: 'IKE ID', cell: (v) => str(v.ikeId ?? v.address) },
    ],
    form: { hide: ['id'] },
  },
  {
    kind: 'vpn-connection',
    collection: 'vpn-connections',
    title: 'VPN connections',
    singular: 'VPN connection',
    alsoLive: ['customer-gateway'],
    columns: [
      { title: 'Customer gateway', cell: (v) => <Link href={`/customer-gateways/${encodeURIComponent(String(v.customerGateway))}`}>{str(v.customerGateway)}</Link> },
      { title: 'Remote subnets', cell: (v) => str((v.remoteSubnets as string[] | undefined)?.join(', ')) },
      { title: 'Problem', cell: (v) => (v.status === 'ACTIVE' ? '' : str((v.last_error as { message?: string } | undefined)?.message ?? v.status_reason ?? '')) },
    ],
    form: { secret: ['auth.psk'], open: ['auth'], refs: { customerGateway: 'customer-gateways' } },
    editForm: { secret: ['auth.psk'], hide: ['auth'] },
    Actions: ConnectionActions,
    Detail: ConnectionDetail,
    refreshMs: 5000,
    hideProps: ['last_error', 'child_sas', 'children', 'sas', 'ike_sa', 'ike_state', 'status_reason'],
  },
  {
    kind: 'vpn-server',
    collection: 'vpn-servers',
    title: 'VPN servers',
    singular: 'VPN server',
    columns: [
      { title: 'Protocols', cell: (v) => `${str((v.protocols as string[] | undefined)?.join(', '))} ${str(v.port)}` },
      { title: 'Clients', cell: (v) => str(v.clients) },
    ],
    Actions: ServerActions,
    Detail: ServerDetail,
  },
  {
    kind: 'user',
    collection: 'users',
    title: 'Users',
    singular: 'user',
    columns: [
      { title: 'Groups', cell: (v) => str((v.groups as string[] | undefined)?.join(', ')) },
      { title: 'Disabled', cell: (v) => (v.disabled ? 'yes' : 'no') },
    ],
    form: { hide: ['passwordHash'], secret: ['password'], refs: { groups: 'user-groups', servers: 'vpn-servers' } },
    Actions: UserActions,
  },
  { kind: 'user-group', collection: 'user-groups', title: 'User groups', singular: 'user group' },
  {
    kind: 'access-policy',
    collection: 'access-policies',
    title: 'Access policies',
    singular: 'access policy',
    columns: [{ title: 'Group', cell: (v) => str(v.group) }],
    form: { refs: { group: 'user-groups' } },
  },
  {
    kind: 'vpc-endpoint-service',
    collection: 'vpc-endpoint-services',
    title: 'Endpoint services',
    singular: 'endpoint service',
    alsoLive: ['vpc-endpoint'],
    columns: [
      { title: 'Type', cell: (v) => str(v.service_type) },
      { title: 'Approval', cell: (v) => (v.approvalRequired ? 'required' : 'automatic') },
      { title: 'Endpoints', cell: (v) => str(v.connections) },
    ],
    Detail: ServiceDetail,
  },
  {
    kind: 'vpc-endpoint',
    collection: 'vpc-endpoints',
    title: 'Endpoints',
    singular: 'endpoint',
    alsoLive: ['vpc-endpoint-service'],
    form: { refs: { service: 'vpc-endpoint-services' } },
    columns: [
      { title: 'Service', cell: (v) => <Link href={`/vpc-endpoint-services/${encodeURIComponent(String(v.service))}`}>{str(v.service)}</Link> },
      { title: 'Address', cell: (v) => `${str(v.ip)} ${((v.dns_names as string[] | undefined) ?? []).join(' ')}` },
    ],
    Detail: EndpointDetail,
  },
];

export { ProfileDialog };
