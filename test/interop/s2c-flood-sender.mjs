// IKE_SA_INIT flood sender for test/interop/s2c-flood.test.ts: runs inside the site namespace and
// sends a crafted IKE_SA_INIT request (SA KE Ni) with a fresh random SPIi and nonce per datagram at
// a fixed rate for a bounded time, never answering the responder. Prints one JSON line at the end:
// { sent, replies, cookies } (cookies: replies that are N(COOKIE), RFC 7296 §2.6).
//
// usage: node s2c-flood-sender.mjs BIND_ADDR TARGET_ADDR TARGET_PORT PACKETS_PER_SEC DURATION_MS TEMPLATE_HEX NONCE_OFFSET
import { createSocket } from 'node:dgram';
import { randomFillSync } from 'node:crypto';

const [bindAddr, target, portText, ppsText, durationText, templateHex, nonceOffsetText] = process.argv.slice(2);
const port = Number(portText);
const pps = Number(ppsText);
const durationMs = Math.min(Number(durationText), 30_000); // bounded whatever the caller asks
const template = Buffer.from(templateHex, 'hex');
const nonceOffset = Number(nonceOffsetText);
const IKE_HEADER_SIZE = 28;
const PAYLOAD_N = 41;
const NOTIFY_COOKIE = 16390;

const sock = createSocket('udp4');
let sent = 0;
let replies = 0;
let cookies = 0;
sock.on('message', (m) => {
  replies++;
  // a reply that carries only N(COOKIE): first payload N, notify type at 28 + 4 (generic header) + 2
  if (m.length >= IKE_HEADER_SIZE + 8 && m[16] === PAYLOAD_N && m.readUInt16BE(IKE_HEADER_SIZE + 6) === NOTIFY_COOKIE) cookies++;
});
sock.bind(0, bindAddr, () => {
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Date.now() - start;
    const due = Math.floor((Math.min(elapsed, durationMs) * pps) / 1000);
    while (sent < due) {
      const d = Buffer.from(template);
      randomFillSync(d, 0, 8); // SPIi
      randomFillSync(d, nonceOffset, d.length - nonceOffset); // Ni
      sock.send(d, port, target);
      sent++;
    }
    if (elapsed >= durationMs) {
      clearInterval(timer);
      // late replies still count
      setTimeout(() => {
        process.stdout.write(`${JSON.stringify({ sent, replies, cookies, durationMs })}\n`);
        sock.close();
      }, 300);
    }
  }, 5);
});
