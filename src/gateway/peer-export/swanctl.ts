import type { ExportFacts } from './facts.js';
import { confValue, hardMarginSec, oneUnitDuration, pskValue } from './facts.js';
import { commentText } from './comment.js';

/**
 * The customer side as a strongSwan 5.9 swanctl.conf (see swanctl.conf(5); the settings below are
 * chosen in src/gateway/peer-export.ts's overview). Relative `certs`/`cacerts` names resolve in
 * swanctl's x509/ and x509ca/ folders, and swanctl loads every private key in private/.
 */
export function swanctlText(f: ExportFacts): string {
  // swanctl looks settings up by dotted paths ("connections.NAME.version"), so a "." in a section
  // name would split it; connection names may hold dots, section names get "_" instead
  const sec = f.name.replace(/\./g, '_');
  const cert = f.auth.kind === 'cert' ? f.auth : null;
  const L: string[] = [];
  L.push(`# strongSwan swanctl.conf: the customer side of VPN connection ${f.name} of gateway ${f.gatewayName}.`);
  if (cert) {
    L.push('# Certificate authentication. Put these files into /etc/swanctl before loading:');
    L.push(`#   x509/${sec}.pem: your gateway's certificate, issued by ${commentText(cert.peerCas.join(' or '))}`);
    L.push('#     (this gateway trusts no other CA for you); its subject or a subjectAltName must hold local.id');
    L.push('#   private/<any name>: its private key (PEM)');
    L.push(`#   x509ca/${sec}-ca.pem: the CA that issued this gateway's certificate, ${commentText(cert.ourIssuer)}`);
  } else {
    L.push('# THIS FILE HOLDS THE PRE-SHARED KEY (secrets section): keep it private (chmod 600).');
  }
  L.push(`# Install: copy it to /etc/swanctl/conf.d/${f.name}.swanctl.conf, then run: swanctl --load-all`);
  L.push(f.peerStarts
    ? '# The tunnel comes up when the file is loaded and is kept up from this side.'
    : '# The cloud gateway initiates the tunnel; traffic from your subnets brings it up too (trap policies).');
  L.push('connections {');
  L.push(`  ${sec} {`);
  L.push('    version = 2');
  L.push(`    local_addrs = ${f.peerAddr ?? '%any'}`);
  L.push(`    remote_addrs = ${f.ourAddrs.join(', ')}`);
  L.push(`    proposals = ${f.ikeProposals}`);
  // rekey at the lifetime minus up to rand_time (= over_time), deleted at lifetime + over_time:
  // the same schedule as the cloud gateway's
  L.push(`    rekey_time = ${oneUnitDuration(f.ikeLifetimeSec)}`);
  L.push(`    over_time = ${oneUnitDuration(hardMarginSec(f.ikeLifetimeSec))}`);
  L.push('    # the cloud gateway carries ESP in UDP 4500 (RFC 3948) and does not implement MOBIKE');
  L.push('    encap = yes');
  L.push('    mobike = no');
  if (f.peerStarts) L.push('    keyingtries = 0');
  if (f.dpdSec !== null) L.push(`    dpd_delay = ${oneUnitDuration(f.dpdSec)}`);
  const localId = f.peerId ? confValue(f.peerId.text, 'customer gateway id') : null;
  const remoteId = confValue(f.ourId.text, 'ike.localId');
  L.push('    local {');
  L.push(`      auth = ${cert ? 'pubkey' : 'psk'}`);
  if (localId) L.push(`      id = ${localId}`);
  if (cert) L.push(`      certs = ${sec}.pem`);
  L.push('    }');
  L.push('    remote {');
  L.push(`      auth = ${cert ? 'pubkey' : 'psk'}`);
  L.push(`      id = ${remoteId}`);
  if (cert) L.push(`      cacerts = ${sec}-ca.pem`);
  L.push('    }');
  L.push('    children {');
  // a trapped 0.0.0.0/0 (route mode) would take all of the site's traffic before the tunnel is up
  const waitAction = f.routeBased ? 'none' : 'trap';
  for (const ch of f.children) {
    L.push(`      ${ch.name.replace(/\./g, '_')} {`);
    L.push(`        local_ts = ${ch.peerSubnets.join(', ')}`);
    L.push(`        remote_ts = ${ch.ourSubnets.join(', ')}`);
    L.push(`        esp_proposals = ${ch.espProposals}`);
    L.push(`        rekey_time = ${oneUnitDuration(ch.espLifetimeSec)}`);
    L.push(`        life_time = ${oneUnitDuration(ch.espLifetimeSec + hardMarginSec(ch.espLifetimeSec))}`);
    L.push(`        start_action = ${f.peerStarts ? 'start' : waitAction}`);
    L.push(`        close_action = ${f.peerStarts ? 'start' : waitAction}`);
    if (f.dpdSec !== null) L.push(`        dpd_action = ${f.peerStarts ? 'restart' : f.routeBased ? 'clear' : 'trap'}`);
    L.push('      }');
  }
  L.push('    }');
  L.push('  }');
  L.push('}');
  if (f.auth.kind === 'psk') {
    L.push('secrets {');
    L.push(`  ike-${sec} {`);
    if (localId) L.push(`    id-1 = ${localId}`);
    L.push(`    id-2 = ${remoteId}`);
    L.push(`    secret = ${pskValue(f.auth.secret)}`);
    L.push('  }');
    L.push('}');
  }
  return `${L.join('\n')}\n`;
}
