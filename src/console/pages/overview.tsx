/** The overview: gateway health, tunnels up/down, clients online, throughput now. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import * as api from '../api.js';
import { useLive } from '../live.js';
import { Link, Status, errorText, rate } from '../ui.js';
import { useList } from './resource.js';

export function Overview() {
  const [health, setHealth] = useState<{ ok: boolean; text: string } | null>(null);
  const [sum, setSum] = useState<api.TrafficSummary | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const conns = useList('vpn-connections', ['vpn-connection', 'customer-gateway']).items ?? [];
  const servers = useList('vpn-servers', ['vpn-server']).items ?? [];
  const load = useCallback(() => {
    fetch('/healthz', { credentials: 'same-origin' }).then(
      async (r) => setHealth({ ok: r.ok, text: r.ok ? 'healthy' : `unhealthy (${r.status}): ${await r.text()}` }),
      (e: unknown) => setHealth({ ok: false, text: errorText(e) }),
    );
    api.trafficSummary().then((s) => {
      setSum(s);
      setErr(null);
    }, (e: unknown) => setErr(errorText(e)));
  }, []);
  useEffect(() => {
    load();
    const t = setInterval(load, 5000); // throughput moves without events
    return () => clearInterval(t);
  }, [load]);
  useLive(null, load);
  const down = conns.filter((c) => c.status !== 'ACTIVE');
  return (
    <div>
      <h1>Overview</h1>
      {err && <p class="error" role="alert">{err}</p>}
      <div class="cards">
        <div class="card" data-testid="health">
          <h2>Gateway</h2>
          <p class="big"><Status value={health ? (health.ok ? 'ACTIVE' : 'DOWN') : 'PENDING_UPDATE'} /></p>
          <p>{health?.text ?? 'checking…'}</p>
        </div>
        <div class="card" data-testid="tunnels">
          <h2>Tunnels</h2>
          <p class="big"><span class="up">{sum?.tunnelsUp ?? '-'}</span> up, <span class="down">{sum?.tunnelsDown ?? '-'}</span> down</p>
          <p><Link href="/vpn-connections">VPN connections</Link></p>
        </div>
        <div class="card" data-testid="clients">
          <h2>Clients online</h2>
          <p class="big">{sum?.clientsOnline ?? '-'}</p>
          <p><Link href="/clients">Online clients</Link></p>
        </div>
        <div class="card" data-testid="throughput">
          <h2>Throughput now</h2>
          <p class="big">in {rate(sum?.inBytesPerSec ?? 0)}</p>
          <p class="big">out {rate(sum?.outBytesPerSec ?? 0)}</p>
        </div>
      </div>
      {down.length > 0 && (
        <section>
          <h2>Connections down</h2>
          <ul class="plain">
            {down.map((c) => (
              <li key={c.id}>
                <Link href={`/vpn-connections/${encodeURIComponent(c.name)}`}>{c.name}</Link> <Status value={c.status} />{' '}
                {String((c.last_error as { message?: string } | undefined)?.message ?? c.status_reason ?? '')}
              </li>
            ))}
          </ul>
        </section>
      )}
      <section>
        <h2>VPN servers</h2>
        <ul class="plain">
          {servers.map((s) => (
            <li key={s.id}><Link href={`/vpn-servers/${encodeURIComponent(s.name)}`}>{s.name}</Link> <Status value={s.status} /> {String(s.clients ?? 0)} clients</li>
          ))}
          {!servers.length && <li>No VPN server.</li>}
        </ul>
      </section>
    </div>
  );
}
