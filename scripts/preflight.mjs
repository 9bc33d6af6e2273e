#!/usr/bin/env node
// Checks that this machine has everything the test suite loads, before any test runs, and says in one
// line per problem what is missing and which Debian package brings it. It installs nothing: `.ci/run`
// installs scripts/apt-packages.txt first; on a new machine run
//   apt-get update && apt-get install -y --no-install-recommends $(grep -v '^#' scripts/apt-packages.txt)
// Exit status 0 when all is there, 1 otherwise (the last line then says how to install it).
//
// Checked: root, /dev/net/tun, network namespaces, Node >= 20, every binary the tests spawn, strongSwan
// 5.9.x with every charon plugin the tests' charons load (test/helpers/charon-plugins.json), and that
// clang links a libFuzzer + ASan + UBSan program against OpenSSL's libcrypto (the fuzz tests).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../', import.meta.url);
const problems = [];
const need = (what, pkg) => problems.push({ what, pkg });

function sh(cmd, args) {
  return spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function onPath(bin) {
  if (bin.startsWith('/')) {
    try {
      accessSync(bin, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }
  return sh('sh', ['-c', `command -v ${bin}`]).status === 0;
}

if (process.getuid?.() !== 0) need('root (the tests create network namespaces and TUN devices)', null);
if (!existsSync('/dev/net/tun')) need('/dev/net/tun (the kernel TUN driver)', null);
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 20) need(`Node.js >= 20 (this is ${process.version})`, null);

const BINARIES = [
  ['swanctl', 'strongswan-swanctl'],
  ['/usr/lib/ipsec/charon', 'strongswan-charon'],
  ['openvpn', 'openvpn'],
  ['iperf3', 'iperf3'],
  ['tcpdump', 'tcpdump'],
  ['tshark', 'tshark'],
  ['nft', 'nftables'],
  ['conntrack', 'conntrack'],
  ['ip', 'iproute2'],
  ['ping', 'iputils-ping'],
  ['pgrep', 'procps'],
  ['unshare', 'util-linux'],
  ['g++', 'g++'],
  ['make', 'make'],
  ['python3', 'python3'],
  ['clang++', 'clang'],
  ['curl', 'curl'],
  ['promtool', 'prometheus'],
  ['systemd-analyze', 'systemd'],
  ['script', 'bsdutils'],
  ['chromium', 'chromium'],
];
for (const [bin, pkg] of BINARIES) if (!onPath(bin)) need(`the program ${bin}`, pkg);

const swan = sh('dpkg-query', ['-W', '-f=${Version}', 'strongswan-charon']);
if (swan.status === 0 && !/^5\.9\./.test(swan.stdout)) need(`strongSwan 5.9.x (installed: ${swan.stdout})`, 'strongswan-charon');

// the strongSwan package that ships each plugin the tests load, for the message
const PLUGIN_PACKAGE = {
  'kernel-libipsec': 'libcharon-extra-plugins',
  curve25519: 'libstrongswan-extra-plugins',
  openssl: 'libstrongswan-standard-plugins',
  gcm: 'libstrongswan-standard-plugins',
};
const plugins = JSON.parse(readFileSync(new URL('test/helpers/charon-plugins.json', ROOT), 'utf8'));
for (const p of plugins) {
  if (!existsSync(`/usr/lib/ipsec/plugins/libstrongswan-${p}.so`)) need(`charon's ${p} plugin`, PLUGIN_PACKAGE[p] ?? 'strongswan-charon');
}

if (process.getuid?.() === 0 && onPath('ip')) {
  const ns = `vgpre${process.pid.toString(16)}`;
  const add = sh('ip', ['netns', 'add', ns]);
  if (add.status !== 0) need(`network namespaces (ip netns add: ${add.stderr.trim()})`, null);
  else sh('ip', ['netns', 'del', ns]);
}

if (onPath('clang++')) {
  const dir = mkdtempSync(join(tmpdir(), 'vpcgw-preflight-'));
  try {
    const src = join(dir, 'probe.cc');
    writeFileSync(
      src,
      '#include <openssl/evp.h>\n#include <cstddef>\n#include <cstdint>\n' +
        'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return EVP_CIPHER_CTX_new() ? 0 : 0; }\n',
    );
    const cc = sh('clang++', ['-fsanitize=fuzzer,address,undefined', src, '-lcrypto', '-o', join(dir, 'probe')]);
    if (cc.status !== 0) {
      const err = cc.stderr;
      if (/openssl\/evp\.h/.test(err)) need('OpenSSL headers for the fuzz builds', 'libssl-dev');
      else need(`clang's libFuzzer and sanitizer runtimes (${err.split('\n').find((l) => /error/.test(l))?.trim() ?? 'link failed'})`, 'libclang-rt-14-dev');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (problems.length === 0) {
  console.log('preflight: ok (programs, charon plugins, fuzzer runtimes, namespaces)');
  process.exit(0);
}
for (const p of problems) console.error(`preflight: missing ${p.what}${p.pkg ? ` (Debian package ${p.pkg})` : ''}`);
const pkgs = [...new Set(problems.map((p) => p.pkg).filter(Boolean))];
if (pkgs.length) console.error(`preflight: install with: apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`);
process.exit(1);
