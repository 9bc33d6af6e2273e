/** Every VPN server's online clients on one page, with disconnect and per-client traffic. */
import { useState } from 'preact/hooks';
import { ClientTable, ProfileDialog, useClients } from './kinds.js';
import { useList } from './resource.js';

function ServerClients({ server }: { server: string }) {
  const { clients, reload } = useClients(server);
  return (
    <section>
      <h2>{server}</h2>
      <ClientTable server={server} clients={clients} reload={reload} />
    </section>
  );
}

export function ClientsPage() {
  const servers = useList('vpn-servers', ['vpn-server']).items;
  const [profile, setProfile] = useState(false);
  return (
    <div>
      <div class="page-head">
        <h1>Online clients</h1>
        <button type="button" onClick={() => setProfile(true)}>Download a user profile</button>
      </div>
      {servers === null ? <p>Loading…</p> : servers.length === 0 ? <p class="empty">No VPN server.</p> : servers.map((s) => <ServerClients key={s.id} server={s.name} />)}
      {profile && <ProfileDialog onClose={() => setProfile(false)} />}
    </div>
  );
}
