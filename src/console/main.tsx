/**
 * The web console: a single-page app over the public management API, served by the daemon at /
 * (src/api/server.ts) from dist/console (scripts/build-console.mjs bundles this folder there).
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './app.css';
import * as api from './api.js';
import { startLive, stopLive } from './live.js';
import { ClientsPage } from './pages/clients.js';
import { PAGES } from './pages/kinds.js';
import { Login } from './pages/login.js';
import { Overview } from './pages/overview.js';
import { DetailPage, ListPage } from './pages/resource.js';
import { navigate, usePath } from './router.js';
import { Link } from './ui.js';

const NAV: { href: string; label: string }[] = [
  { href: '/', label: 'Overview' },
  ...PAGES.map((p) => ({ href: `/${p.collection}`, label: p.title })),
  { href: '/clients', label: 'Online clients' },
];

function Route({ path }: { path: string }) {
  if (path === '/' || path === '') return <Overview />;
  if (path === '/clients') return <ClientsPage />;
  const [, collection, name] = /^\/([^/]+)(?:\/(.+))?$/.exec(path) ?? [];
  const page = PAGES.find((p) => p.collection === collection);
  if (!page) return <div><h1>Not found</h1><p>No page at {path}. <Link href="/">Back to the overview</Link>.</p></div>;
  return name ? <DetailPage key={`${collection}/${name}`} page={page} name={decodeURIComponent(name)} /> : <ListPage key={collection} page={page} />;
}

function App() {
  const path = usePath();
  const [session, setSession] = useState<api.Session | null | undefined>(undefined);
  const [menu, setMenu] = useState(false);

  useEffect(() => {
    api.setUnauthorizedHandler(() => {
      api.setSession(null);
      stopLive();
      setSession(null);
    });
    api.currentSession().then(
      (s) => {
        api.setSession(s);
        setSession(s);
      },
      () => setSession(null),
    );
  }, []);
  useEffect(() => {
    if (session) startLive();
    return stopLive;
  }, [session]);
  useEffect(() => setMenu(false), [path]);
  useEffect(() => {
    const title = NAV.find((n) => n.href !== '/' && path.startsWith(n.href))?.label ?? (path === '/' ? 'Overview' : '');
    document.title = title ? `${title} · vpcgw` : 'vpcgw';
  }, [path]);

  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) {
    return (
      <Login
        onLogin={(s) => {
          api.setSession(s);
          setSession(s);
          if (path === '/login') navigate('/', true);
        }}
      />
    );
  }
  const logout = async () => {
    await api.logout().catch(() => undefined);
    api.setSession(null);
    stopLive();
    setSession(null);
  };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">vpcgw</span>
        <button type="button" class="menu-toggle" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>Menu</button>
        <span class="who">{session.user}</span>
        <button type="button" onClick={logout}>Log out</button>
      </header>
      <div class="layout">
        <nav id="nav" class={menu ? 'open' : ''} aria-label="Main">
          <ul>
            {NAV.map((n) => {
              const current = n.href === '/' ? path === '/' : path === n.href || path.startsWith(`${n.href}/`);
              return (
                <li key={n.href}>
                  <Link href={n.href} class={current ? 'current' : ''}>{n.label}</Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <Route path={path === '/login' ? '/' : path} />
        </main>
      </div>
    </>
  );
}

render(<App />, document.getElementById('app')!);
