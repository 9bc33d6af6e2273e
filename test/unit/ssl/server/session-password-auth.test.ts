// The control channel (SslSession) of a server that authenticates by password, against the
// in-process TLS client: no client certificate is requested, and the km2 username/password reach
// the shell once in the 'authenticated' action (never in the logs).
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogger } from '../../../../src/common/log.js';
import { type TestPki, makeTestPki } from '../../../helpers/pki.js';
import { makeHarness } from '../../../helpers/ssl-harness.js';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

// TEST FIXTURE ONLY: not a real password.
const PASSWORD = 'fixture-Pa55word-session';

describe('SslSession with clientCert false (auth type password)', () => {
  it('a client without a certificate gets through TLS; the action carries its username and password; the user is the username', async () => {
    const log = captureLogger();
    const h = makeHarness(pki, { client: { cert: undefined, key: undefined, username: 'bob', password: PASSWORD }, server: { clientCert: false }, log });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')))).toBe(true);
    const a = h.of('authenticated');
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ user: 'bob', certCn: '', username: 'bob', password: PASSWORD });
    expect(JSON.stringify(log.lines.map((l) => [l.bindings, l.obj, l.msg]))).not.toContain(PASSWORD);
  });

  it('a client that sends a certificate anyway is not refused (it is not requested, so none is sent)', async () => {
    const h = makeHarness(pki, { client: { username: 'bob', password: PASSWORD }, server: { clientCert: false } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')))).toBe(true);
    expect(h.of('authenticated')[0]).toMatchObject({ user: 'bob', certCn: '' });
  });

  it('with certificates required (the default) a certificate-less client is still refused', async () => {
    const h = makeHarness(pki, { client: { cert: undefined, key: undefined, username: 'bob', password: PASSWORD } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.length > 0)).toBe(true);
    h.advance(5000);
    expect(h.of('authenticated')).toHaveLength(0);
    expect(h.of('closed')[0]!.reason).toBe('client certificate rejected: NO_PEER_CERTIFICATE');
  });

  it('cert mode: the action also carries the credentials a client sent (for cert+password)', async () => {
    const h = makeHarness(pki, { client: { username: 'carol', password: PASSWORD } });
    h.client.start(h.now());
    expect(await h.pump(() => h.client.commands.some((c) => c.startsWith('PUSH_REPLY')))).toBe(true);
    expect(h.of('authenticated')[0]).toMatchObject({ user: 'alice', certCn: 'alice', username: 'carol', password: PASSWORD });
  });
});
