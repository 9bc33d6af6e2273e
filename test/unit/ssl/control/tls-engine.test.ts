import { beforeAll, describe, expect, it } from 'vitest';
import { type TlsEngine, type TlsSecureInfo, createTlsEngine } from '../../../../src/ssl/control/tls-engine.js';
import { type TestPki, makeTestPki } from '../../../helpers/pki.js';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

async function until(cond: () => boolean, rounds = 300): Promise<boolean> {
  for (let i = 0; i < rounds && !cond(); i++) await new Promise((r) => setImmediate(r));
  return cond();
}

function pair(clientCert: { cert: string; key: string } | null, maxVersion?: 'TLSv1.2' | 'TLSv1.3') {
  const st = { server: null as TlsSecureInfo | null, client: null as TlsSecureInfo | null, sPlain: [] as string[], cPlain: [] as string[], errors: [] as string[], ciphertextChunks: 0 };
  // the server exists first: the client may emit its ClientHello as soon as it is created
  let client: TlsEngine | null = null;
  const server = createTlsEngine(
    { role: 'server', cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
    {
      onCiphertext: (d) => {
        st.ciphertextChunks++;
        client!.feedCiphertext(d);
      },
      onPlaintext: (d) => st.sPlain.push(d.toString()),
      onSecure: (i) => (st.server = i),
      onError: (e) => st.errors.push(`server: ${e.message}`),
    },
  );
  client = createTlsEngine(
    { role: 'client', cert: clientCert?.cert, key: clientCert?.key, ca: pki.ca.cert, maxVersion },
    {
      onCiphertext: (d) => server.feedCiphertext(d),
      onPlaintext: (d) => st.cPlain.push(d.toString()),
      onSecure: (i) => (st.client = i),
      onError: (e) => st.errors.push(`client: ${e.message}`),
    },
  );
  return { client: client as TlsEngine, server, st };
}

describe('TLS engine over in-memory pipes', () => {
  it('TLS 1.3: handshake, client CN and verification verdict, plaintext both ways, same exporter output', async () => {
    const { client, server, st } = pair(pki.client('bob'));
    expect(await until(() => st.server !== null && st.client !== null)).toBe(true);
    expect(st.server!.protocol).toBe('TLSv1.3');
    expect(st.server!.peerCn).toBe('bob');
    expect(st.server!.peerVerifyError).toBeNull();
    expect(st.client!.peerCn).toBe('vpcgw test server');
    expect(st.client!.peerVerifyError).toBeNull();
    client.writePlaintext(Buffer.from('ping'));
    server.writePlaintext(Buffer.from('pong'));
    expect(await until(() => st.sPlain.join('') === 'ping' && st.cPlain.join('') === 'pong')).toBe(true);
    const a = server.exportKeyingMaterial(256, 'EXPORTER-OpenVPN-datakeys');
    const b = client.exportKeyingMaterial(256, 'EXPORTER-OpenVPN-datakeys');
    expect(a.length).toBe(256);
    expect(a.equals(b)).toBe(true);
    expect(server.exportKeyingMaterial(256, 'EXPORTER-other').equals(a)).toBe(false);
    server.destroy();
    client.destroy();
  });

  it('TLS 1.2 works too', async () => {
    const { client, server, st } = pair(pki.client('carol'), 'TLSv1.2');
    expect(await until(() => st.server !== null)).toBe(true);
    expect(st.server!.protocol).toBe('TLSv1.2');
    expect(server.exportKeyingMaterial(32, 'EXPORTER-OpenVPN-datakeys').equals(client.exportKeyingMaterial(32, 'EXPORTER-OpenVPN-datakeys'))).toBe(true);
    server.destroy();
    client.destroy();
  });

  it('reports (does not hide) an unverifiable client certificate, and a missing one', async () => {
    const foreign = pair(pki.foreignClient);
    expect(await until(() => foreign.st.server !== null)).toBe(true);
    expect(foreign.st.server!.peerVerifyError).not.toBeNull();
    expect(foreign.st.server!.peerCn).toBe('foreign-user');
    const none = pair(null);
    expect(await until(() => none.st.server !== null)).toBe(true);
    expect(none.st.server!.peerVerifyError).toBe('NO_PEER_CERTIFICATE');
    for (const p of [foreign, none]) {
      p.server.destroy();
      p.client.destroy();
    }
  });

  it('garbage instead of a ClientHello gives onError, and nothing after destroy()', async () => {
    const errors: string[] = [];
    let out = 0;
    const server = createTlsEngine(
      { role: 'server', cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
      { onCiphertext: () => out++, onPlaintext: () => {}, onSecure: () => {}, onError: (e) => errors.push(e.message) },
    );
    server.feedCiphertext(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(await until(() => errors.length > 0)).toBe(true);
    const n = errors.length;
    server.destroy();
    server.feedCiphertext(Buffer.from('more'));
    await until(() => false, 20);
    expect(errors.length).toBe(n);
  });
});
