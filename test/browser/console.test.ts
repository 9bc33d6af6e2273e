// The web console in a real browser (Debian's chromium driven by playwright-core) against a real
// `vpcgw start`, in the site-to-cloud lab namespaces:
//  - login: a wrong API token is refused, the right one opens the console (session cookie, HttpOnly);
//  - a customer gateway and a VPN connection created through the forms, with a schema error shown
//    beside its field before anything is sent, and the API's ConfigError beside the field it names;
//  - the peer config downloaded from the connection's page is what strongSwan 5.9 loads; "Initiate"
//    brings the tunnel up, the page turns ACTIVE with the SPIs strongSwan shows, and the traffic of a
//    ping appears on the connection's chart;
//  - a user added through the form downloads a profile that the real openvpn 2.6 client connects
//    with; the client is listed on the online clients page, and Disconnect (confirmed) resets it;
//  - a pending endpoint of an approval-required endpoint service is accepted from its service's page;
//  - keyboard: a confirm dialog takes focus and closes on Escape; Regenerate PSK shows the new key once;
//    at 390 px wide nothing scrolls sideways;
//  - logout ends the session; an admin added with `vpcgw admin add` signs in with a password.
// Screenshots of each page go to test-artifacts/console/; VPCGW_DOC_SCREENSHOTS=1 also refreshes the
// ones the README shows (docs/console/).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { NsDaemon } from '../helpers/api.js';
import { ADDR, createTopology, ping, type Topology } from '../helpers/netns.js';
import { ensureBuilt, REPO_ROOT } from '../helpers/openvpn.js';
import { makeTestPki } from '../helpers/pki.js';
import { waitFor, type ManagedProcess } from '../helpers/proc.js';
import { Charon } from '../helpers/strongswan.js';

// TEST FIXTURES ONLY: not real secrets.
const PSK = 'test-fixture-psk-console-0123456789';
const ALICE_PASSWORD = 'console-fixture-password';
const ADMIN_PASSWORD = 'console-fixture-admin-password';

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'console');
const DOCS = join(REPO_ROOT, 'docs', 'console');
const DOC_SHOTS = process.env.VPCGW_DOC_SCREENSHOTS === '1';

let topo: Topology;
let d: NsDaemon | null = null;
let sw: Charon | null = null;
let browser: Browser | null = null;
let ctx: BrowserContext;
let page: Page;
let base = '';
let openvpn: ManagedProcess | null = null;
const pageErrors: string[] = [];
/** Evaluated in the page (the test's tsconfig has no DOM types): is the focus inside the dialog? */
const IN_DIALOG = `document.activeElement?.closest('[role="dialog"]') != null`;
/** The innermost elements that stick out of the viewport on the right (for a failure message). */
const WIDEST = `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && ![...e.children].some((c) => c.getBoundingClientRect().right > document.documentElement.clientWidth + 1)).slice(0, 5).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`;

async function shot(name: string, doc = false): Promise<void> {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (doc && DOC_SHOTS) {
    mkdirSync(DOCS, { recursive: true });
    copyFileSync(file, join(DOCS, `${name}.png`));
  }
}

async function nav(label: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor();
}

/** Newest modification time of the files under `dir` (0 when it does not exist). */
function newest(dir: string, skip = ''): number {
  if (!existsSync(dir)) return 0;
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (p === skip) continue;
    const st = statSync(p);
    t = Math.max(t, st.isDirectory() ? newest(p, skip) : st.mtimeMs);
  }
  return t;
}

beforeAll(async () => {
  // `npm test` has just built both; a focused run rebuilds what its sources outdate
  const src = join(REPO_ROOT, 'src');
  const consoleSrc = join(src, 'console');
  const cliJs = join(REPO_ROOT, 'dist', 'cli.js');
  if (!existsSync(cliJs) || statSync(cliJs).mtimeMs < newest(src, consoleSrc)) await ensureBuilt();
  const appJs = join(REPO_ROOT, 'dist', 'console', 'app.js');
  if (!existsSync(appJs) || statSync(appJs).mtimeMs < newest(consoleSrc)) {
    const b = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-console.mjs')], { stdio: 'inherit' });
    if (b.status !== 0) throw new Error('npm run build:console failed');
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  topo = await createTopology({ tag: 'ui' });
  const pki = makeTestPki();
  const pem = (name: string, text: string) => {
    const p = join(topo.workDir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const dataDir = join(topo.workDir, 'var');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const cfg = {
    gateway: {
      name: 'console-gw',
      dataDir,
      publicAddresses: [ADDR.cloudGwOutside],
      vpcSubnets: [ADDR.vpcSubnet],
      tun: { name: `${topo.id}t`, mtu: 1400 },
      endpoints: { subnet: '10.2.100.0/24' },
      api: { listen: '127.0.0.1:9443' },
    },
    vpnServers: [{
      name: 'p2c',
      protocols: ['udp'],
      port: 1194,
      clientCidr: '10.8.0.0/24',
      localSubnets: [ADDR.vpcSubnet],
      auth: { type: 'password' },
      serverCert: { cert: pem('server.crt', pki.server.cert), key: pem('server.key', pki.server.key) },
      clientCa: pem('ca.crt', pki.ca.cert),
    }],
    endpointServices: [{
      name: 'billing',
      backend: { address: ADDR.vpcHost },
      ports: [{ protocol: 'tcp', servicePort: 80, backendPort: 8080 }],
      approvalRequired: true,
    }],
    endpoints: [{ name: 'billing-ep', service: 'billing', address: '10.2.100.20', dnsName: 'billing.endpoint.internal' }],
  };
  const cfgPath = pem('vpcgw.yaml', stringify(cfg));
  const ns = { name: topo.ns.cloudGw, exec: (cmd: string, args: readonly string[], o?: { timeoutMs?: number; allowFail?: boolean }) => topo.exec('cloudGw', cmd, args, o) };
  d = await NsDaemon.start(ns, { dataDir, config: cfgPath, label: 'vpcgw-console', timeoutMs: 30_000 });
  await d.createToken();
  base = await d.apiUrl();
  // The API listens on the namespace's loopback: chromium runs in that namespace. The wrapper is
  // only `ip netns exec`; the browser is Debian's /usr/bin/chromium.
  const wrapper = join(topo.workDir, 'chromium-in-ns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${topo.ns.cloudGw} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
  browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox'] });
  ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // the daemon's content security policy must not block anything the console does
  page.on('console', (m) => m.type() === 'error' && /Content Security Policy/i.test(m.text()) && pageErrors.push(m.text()));
}, 120_000);

afterAll(async () => {
  await openvpn?.stop('SIGTERM', 5000).catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await sw?.stop().catch(() => undefined);
  if (d) await d.stop();
  await topo?.destroy();
});

describe('the web console against vpcgw start', () => {
  it('a wrong API token is refused; the right one logs in (HttpOnly session cookie), and the overview shows the gateway', async () => {
    await page.goto(`${base}/`);
    await page.getByRole('textbox', { name: 'API token' }).fill('vpcgw_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/refused/i);
    await shot('login-refused');
    await page.getByRole('textbox', { name: 'API token' }).fill(d!.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const cookie = (await ctx.cookies()).find((c) => c.name === 'vpcgw_session');
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    await expect.poll(() => page.getByTestId('health').textContent()).toContain('healthy');
    await expect.poll(() => page.getByTestId('tunnels').textContent()).toMatch(/0 up/);
    await shot('overview');
  }, 30_000);

  it('a customer gateway through the form: a bad address is shown beside its field before anything is sent', async () => {
    await nav('Customer gateways');
    await page.getByRole('button', { name: 'New customer gateway' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('name *').fill('dc1');
    await dialog.getByLabel('address *').fill('192.0.2.300');
    await dialog.getByRole('button', { name: 'Create' }).click();
    const err = dialog.locator('.field-error[data-field="address"]');
    await expect.poll(() => err.textContent()).toMatch(/IPv4/);
    await expect.poll(() => dialog.getByLabel('address *').getAttribute('aria-invalid')).toBe('true');
    await shot('form-error', true);
    expect((await d!.api('GET', '/v1/customer-gateways/dc1')).status).toBe(404);
    await dialog.getByLabel('address *').fill(ADDR.siteGwOutside);
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('link', { name: 'dc1', exact: true }).waitFor();
    expect((await d!.api('GET', '/v1/customer-gateways/dc1')).json).toMatchObject({ name: 'dc1', address: ADDR.siteGwOutside });
  }, 30_000);

  it('a VPN connection through the form: the API\'s refusal (remote subnet inside the VPC) is shown beside remoteSubnets', async () => {
    await nav('VPN connections');
    await page.getByRole('button', { name: 'New VPN connection' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('name *').fill('dc1-main');
    await dialog.getByLabel('customerGateway *').fill('dc1');
    await dialog.getByLabel('localSubnets', { exact: true }).fill(ADDR.vpcSubnet);
    await dialog.getByLabel('remoteSubnets', { exact: true }).fill('10.2.5.0/24'); // inside the VPC: the gateway refuses it
    await dialog.getByLabel('psk').fill(PSK);
    await dialog.getByLabel('startAction').selectOption('none');
    await dialog.getByRole('button', { name: 'Create' }).click();
    const err = dialog.locator('.field-error[data-field="remoteSubnets"]');
    await expect.poll(() => err.textContent()).toMatch(/10\.2\.5\.0\/24.* not valid/);
    await shot('form-server-error');
    await dialog.getByLabel('remoteSubnets', { exact: true }).fill(ADDR.siteSubnet);
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('link', { name: 'dc1-main', exact: true }).waitFor();
    const v = (await d!.api('GET', '/v1/vpn-connections/dc1-main')).json as Record<string, unknown>;
    expect(v).toMatchObject({ name: 'dc1-main', customerGateway: 'dc1', remoteSubnets: [ADDR.siteSubnet] });
    expect(JSON.stringify(v)).not.toContain(PSK); // write-only
  }, 30_000);

  it('the downloaded peer config is what strongSwan loads; Initiate brings the tunnel up: ACTIVE, the SPIs, traffic on the chart', async () => {
    await page.getByRole('link', { name: 'dc1-main', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: /dc1-main/ }).waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download peer config' }).click()]);
    const confPath = join(topo.workDir, 'peer-swanctl.conf');
    await download.saveAs(confPath);
    const conf = readFileSync(confPath, 'utf8');
    expect(conf).toContain('connections {');
    expect(conf).toContain(PSK);
    sw = await Charon.start(topo, 'siteGw', {
      localAddr: ADDR.siteGwOutside, remoteAddr: ADDR.cloudGwOutside, localId: ADDR.siteGwOutside, remoteId: ADDR.cloudGwOutside,
      psk: PSK, ikeProposals: 'default', espProposals: 'default', localTs: ADDR.siteSubnet, remoteTs: ADDR.vpcSubnet,
    });
    writeFileSync(sw.swanctlPath, conf, { mode: 0o600 });
    await sw.loadAll();
    await page.getByRole('button', { name: 'Initiate' }).click();
    const head = page.locator('.page-head h1 .status');
    await expect.poll(() => head.getAttribute('data-status'), { timeout: 30_000 }).toBe('ACTIVE');
    const sas = await sw.waitInstalled(10_000);
    const hex = (s: string | null) => (s ?? '').replace(/^0x/, '').padStart(8, '0').toLowerCase();
    await expect.poll(async () => hex(await page.locator('code.spi-in').first().textContent())).toBe(sas[0]!.children[0]!.spiOut);
    expect(hex(await page.locator('code.spi-out').first().textContent())).toBe(sas[0]!.children[0]!.spiIn);
    const p = await ping(topo, 'siteHost', ADDR.vpcHost, { count: 20, intervalSec: 0.2 });
    expect(p.received, p.output).toBeGreaterThan(15);
    // the gateway samples every 5 s and the chart refetches every 5 s
    await expect.poll(async () => Number(await page.locator('section.chart').getAttribute('data-total')), { timeout: 25_000, interval: 1000 }).toBeGreaterThan(0);
    if (DOC_SHOTS) {
      // a README picture with some history on the chart: half a minute of traffic
      await ping(topo, 'siteHost', ADDR.vpcHost, { count: 150, intervalSec: 0.2, size: 1000 });
      await page.waitForTimeout(6000);
    }
    await shot('connection', true);
    await nav('Overview');
    await expect.poll(() => page.getByTestId('tunnels').textContent()).toMatch(/1 up/);
  }, 90_000);

  it('a user added through the form downloads a profile the real openvpn client connects with; the client is listed online', async () => {
    await nav('Users');
    await page.getByRole('button', { name: 'New user' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('name *').fill('alice');
    await dialog.getByLabel('password', { exact: true }).fill(ALICE_PASSWORD);
    await dialog.getByLabel('servers').fill('p2c');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('link', { name: 'alice', exact: true }).click();
    await page.getByRole('button', { name: 'Download profile' }).click();
    const pd = page.getByRole('dialog', { name: 'Download a client profile' });
    const [download] = await Promise.all([page.waitForEvent('download'), pd.getByRole('button', { name: 'Download profile' }).click()]);
    const profilePath = join(topo.workDir, 'alice.ovpn');
    await download.saveAs(profilePath);
    const profile = readFileSync(profilePath, 'utf8');
    expect(profile).toMatch(/^auth-user-pass$/m);
    expect(profile).toContain(`remote ${ADDR.cloudGwOutside} 1194`);
    const authFile = join(topo.workDir, 'alice.pass');
    writeFileSync(authFile, `alice\n${ALICE_PASSWORD}\n`, { mode: 0o600 });
    const logPath = join(topo.workDir, 'openvpn-alice.log');
    openvpn = topo.spawnIn('siteGw', 'openvpn', ['--config', profilePath, '--auth-user-pass', authFile, '--verb', '3', '--log', logPath, '--route-nopull'], { label: 'openvpn alice' });
    const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
    await waitFor(async () => {
      if (!openvpn!.running) throw new Error(`openvpn exited:\n${log().slice(-3000)}`);
      return log().includes('Initialization Sequence Completed');
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'openvpn alice connected' });
    await nav('Online clients');
    await expect.poll(() => page.locator('td[data-label="User"]').allTextContents(), { timeout: 15_000 }).toContain('alice');
    await shot('clients', true);
    await nav('Overview');
    await expect.poll(() => page.getByTestId('clients').textContent()).toMatch(/1/);
    await shot('overview', true);
    await nav('Online clients');
    // Disconnect asks first; the client is told RESTART and comes back by itself
    await page.locator('tr', { hasText: 'alice' }).getByRole('button', { name: 'Disconnect' }).click();
    await page.getByRole('dialog', { name: /Disconnect alice/ }).getByRole('button', { name: 'Disconnect' }).click();
    await waitFor(async () => /server-pushed-connection-reset/.test(log()), { timeoutMs: 15_000, intervalMs: 250, what: 'openvpn told RESTART' });
  }, 90_000);

  it('a pending endpoint is accepted from its service\'s page', async () => {
    await nav('Endpoint services');
    await page.getByRole('link', { name: 'billing', exact: true }).click();
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'billing-ep' }) });
    await expect.poll(() => row.locator('.status').getAttribute('data-status')).toBe('PENDING_ACCEPTANCE');
    await shot('endpoint-service', true);
    await row.getByRole('button', { name: 'Accept' }).click();
    await expect.poll(() => row.locator('.status').getAttribute('data-status')).toBe('ACCEPTED');
    expect((await d!.api('GET', '/v1/vpc-endpoints/billing-ep')).json).toMatchObject({ status: 'ACCEPTED' });
  }, 30_000);

  it('keyboard: a destructive action asks first, the dialog holds the focus and Escape closes it without acting', async () => {
    await nav('VPN connections');
    await page.getByRole('link', { name: 'dc1-main', exact: true }).click();
    await page.getByRole('button', { name: 'Terminate' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: /Terminate dc1-main/ });
    await dialog.waitFor();
    await expect.poll(() => page.evaluate<boolean>(IN_DIALOG)).toBe(true);
    for (let i = 0; i < 4; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate<boolean>(IN_DIALOG)).toBe(true);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect((await d!.api('GET', '/v1/vpn-connections/dc1-main')).json).toMatchObject({ status: 'ACTIVE' });
  }, 30_000);

  it('Regenerate PSK (confirmed) shows the new key once; the peer config carries it, the API never returns it', async () => {
    await page.getByRole('button', { name: 'Regenerate PSK' }).click();
    await page.getByRole('dialog', { name: /Regenerate the PSK/ }).getByRole('button', { name: 'Regenerate' }).click();
    const shown = page.getByRole('dialog', { name: 'New pre-shared key' }).getByLabel('Pre-shared key');
    await expect.poll(() => shown.inputValue()).not.toBe('');
    const psk = await shown.inputValue();
    expect(psk).not.toBe(PSK);
    await page.getByRole('button', { name: 'Done' }).click();
    const peer = await d!.api('GET', '/v1/vpn-connections/dc1-main/peer-config');
    expect(peer.body).toContain(psk);
    expect(JSON.stringify((await d!.api('GET', '/v1/vpn-connections/dc1-main')).json)).not.toContain(psk);
  }, 30_000);

  it('at 390 px wide the pages fit (no sideways scrolling)', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/', '/clients', '/vpn-connections', '/vpn-connections/dc1-main']) {
      await page.goto(`${base}${path}`);
      await page.locator('main h1').first().waitFor();
      await page.waitForTimeout(300);
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      const wide = overflow > 0 ? await page.evaluate<string[]>(WIDEST) : [];
      expect(overflow, `${path}: ${wide.join(' | ')}`).toBeLessThanOrEqual(0);
    }
    await shot('mobile-connection', true);
    await page.setViewportSize({ width: 1280, height: 800 });
  }, 30_000);

  it('logout ends the session: the login page again, and the API refuses the old cookie', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('textbox', { name: 'API token' }).waitFor();
    const status = await page.evaluate(async () => (await fetch('/v1/vpn-connections')).status);
    expect(status).toBe(401);
  }, 20_000);

  it('an admin added with `vpcgw admin add` signs in with a password; a wrong password is refused', async () => {
    await topo.exec('cloudGw', process.execPath, [join(REPO_ROOT, 'dist', 'cli.js'), 'admin', 'add', 'ops', '--password-stdin', '--control', d!.controlPath], {
      input: `${ADMIN_PASSWORD}\n`, timeoutMs: 30_000,
    });
    await page.goto(`${base}/`);
    await page.getByRole('radio', { name: 'Admin user' }).check();
    await page.getByLabel('User name').fill('ops');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/refused/i);
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(await page.locator('.who').textContent()).toContain('ops');
    expect(pageErrors).toEqual([]);
  }, 30_000);
});
