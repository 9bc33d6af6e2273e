// Crafted-IKE sender for test/interop/s2c-crafted.test.ts: runs inside the site namespace, bound to
// the customer gateway's own address, and sends the given IKE datagrams round-robin at a fixed rate
// for a bounded time: each template once to UDP 500 as it is, and once to UDP 4500 behind the
// non-ESP marker (RFC 3948 §2.2: four zero bytes where ESP has its SPI). Every datagram gets a fresh
// random SPIi (header bytes 0-7, RFC 7296 §3.1), so none of them is a retransmission of another.
// Prints one JSON line at the end: { sent, sent500, sent4500, replies }.
//
// usage: node s2c-crafted-sender.mjs BIND_ADDR TARGET_ADDR PACKETS_PER_SEC DURATION_MS TEMPLATE_HEX...
import { createSocket } from 'node:dgram';
import { randomFillSync } from 'node:crypto';

const [bindAddr, target, ppsText, durationText, ...templatesHex] = process.argv.slice(2);
const pps = Number(ppsText);
const durationMs = Math.min(Number(durationText), 30_000); // bounded whatever the caller asks
const IKE_PORT = 500;
const IKE_NATT_PORT = 4500;
const NON_ESP_MARKER_SIZE = 4;
const SPI_SIZE = 8;

// one entry per (template, port): the 4500 copy starts with the marker
const variants = [];
for (const hex of templatesHex) {
  const t = Buffer.from(hex, 'hex');
  variants.push({ port: IKE_PORT, data: t, spiOffset: 0 });
  const m = Buffer.alloc(NON_ESP_MARKER_SIZE + t.length);
  t.copy(m, NON_ESP_MARKER_SIZE);
  variants.push({ port: IKE_NATT_PORT, data: m, spiOffset: NON_ESP_MARKER_SIZE });
}

const sock = createSocket('udp4');
let sent = 0;
let sent500 = 0;
let sent4500 = 0;
let replies = 0;
sock.on('message', () => {
  replies++;
});
sock.bind(0, bindAddr, () => {
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Date.now() - start;
    const due = Math.floor((Math.min(elapsed, durationMs) * pps) / 1000);
    while (sent < due) {
      const v = variants[sent % variants.length];
      const d = Buffer.from(v.data);
      randomFillSync(d, v.spiOffset, SPI_SIZE);
      sock.send(d, v.port, target);
      if (v.port === IKE_PORT) sent500++;
      else sent4500++;
      sent++;
    }
    if (elapsed >= durationMs) {
      clearInterval(timer);
      // late replies still count
      setTimeout(() => {
        process.stdout.write(`${JSON.stringify({ sent, sent500, sent4500, replies, durationMs })}\n`);
        sock.close();
      }, 300);
    }
  }, 5);
});
