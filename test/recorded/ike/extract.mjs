// Turns a capture.sh run (pcap + charon log at ike=4/chd=4) into a JSON fixture for the
// recorded-packet tests: the IKE datagrams (non-ESP marker stripped) and the keys strongSwan
// printed. usage: node extract.mjs OUTDIR/SUITE.pcap OUTDIR/SUITE.log SUITE "description" > SUITE.json
import { readFileSync } from 'node:fs';

const [pcapPath, logPath, suite, description] = process.argv.slice(2);

function readPcap(buf) {
  const magic = buf.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4) throw new Error('expected a little-endian microsecond pcap');
  const linktype = buf.readUInt32LE(20);
  if (linktype !== 1) throw new Error(`linktype ${linktype}, expected Ethernet`);
  const out = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const incl = buf.readUInt32LE(o + 8);
    const frame = buf.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    if (frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    const ihl = (ip[0] & 0x0f) * 4;
    if (ip[9] !== 17) continue;
    const src = [...ip.subarray(12, 16)].join('.');
    const udp = ip.subarray(ihl);
    const sport = udp.readUInt16BE(0);
    const dport = udp.readUInt16BE(2);
    let payload = udp.subarray(8, udp.readUInt16BE(4));
    if (sport === 4500 || dport === 4500) {
      if (payload.length < 4 || payload.readUInt32BE(0) !== 0) continue; // ESP or keepalive
      payload = payload.subarray(4);
    }
    out.push({ from: src === '192.0.2.1' ? 'initiator' : 'responder', port: dport, hex: payload.toString('hex') });
  }
  return out;
}

function readDumps(text) {
  const lines = text.split('\n');
  const dumps = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /\[(\w+)\] (.+?) => (\d+) bytes/.exec(lines[i]);
    if (!m) continue;
    const n = Number(m[3]);
    let hex = '';
    for (let j = i + 1; hex.length < 2 * n && j < lines.length; j++) {
      const d = /\[\w+\]\s+\d+: (.*)$/.exec(lines[j]);
      if (!d) break;
      const pairs = d[1].slice(0, 48).trim().split(/\s+/).filter((p) => /^[0-9A-F]{2}$/.test(p));
      hex += pairs.slice(0, n - hex.length / 2).join('').toLowerCase();
    }
    dumps.push({ name: m[2], hex });
  }
  return dumps;
}

const datagrams = readPcap(readFileSync(pcapPath));
const dumps = readDumps(readFileSync(logPath, 'utf8'));
const one = (name) => dumps.find((d) => d.name === name)?.hex;
const all = (name) => dumps.filter((d) => d.name === name).map((d) => d.hex);
const auths = all('AUTH = prf(prf(secret, keypad), octets)');
const octets = all("octets = message + nonce + prf(Sk_px, IDx')");
const fixture = {
  suite,
  description,
  capturedWith: 'test/recorded/ike/capture.sh (strongSwan 5.9.8 charon, kernel-libipsec, two netns), extracted by extract.mjs',
  psk: 'interop-test-psk-0123456789',
  datagrams,
  // charon's own one-line summaries ("generating"/"parsed"), in datagram order
  logged: readFileSync(logPath, 'utf8')
    .split('\n')
    .map((l) => /\[ENC\] (?:generating|parsed) (.*)$/.exec(l)?.[1])
    .filter((x) => x !== undefined),
  keys: {
    sharedSecret: one('shared Diffie Hellman secret'),
    skeyseed: one('SKEYSEED'),
    skD: one('Sk_d secret'),
    skAi: one('Sk_ai secret'),
    skAr: one('Sk_ar secret'),
    skEi: one('Sk_ei secret'),
    skEr: one('Sk_er secret'),
    skPi: one('Sk_pi secret'),
    skPr: one('Sk_pr secret'),
    authI: auths[0],
    authR: auths[1],
    octetsI: octets[0],
    octetsR: octets[1],
    childEncrI: one('encryption initiator key'),
    childEncrR: one('encryption responder key'),
    childIntegI: one('integrity initiator key'),
    childIntegR: one('integrity responder key'),
  },
  // every dump of these names, in log order (rekeys print them again)
  series: Object.fromEntries(
    [
      'shared Diffie Hellman secret', 'SKEYSEED', 'Sk_d secret', 'Sk_ai secret', 'Sk_ar secret', 'Sk_ei secret',
      'Sk_er secret', 'Sk_pi secret', 'Sk_pr secret', 'DH secret', 'seed', 'encryption initiator key',
      'encryption responder key', 'integrity initiator key', 'integrity responder key',
    ].map((n) => [n, all(n)]),
  ),
};
process.stdout.write(JSON.stringify(fixture, null, 1) + '\n');
