import { bytesToIp } from '../../common/ip.js';
import { ConfigError } from '../../common/errors.js';
import { IdType } from '../../ike/wire/constants.js';
import { dnToString } from '../../ike/config/x509.js';
import type { Identity } from '../../ike/config/identity.js';
import { oneUnitDuration, pskValue, type ExportFacts } from './facts.js';
import { libreswanEsp, libreswanIke } from './libreswan-proposals.js';
import { commentText } from './comment.js';

/**
 * The customer side as a Libreswan ipsec.conf `conn` (Libreswan 5: several selectors in one
 * leftsubnet= make one Child SA, which is what this gateway negotiates; Libreswan 4's leftsubnets=
 * would open one Child SA per subnet pair, and the extra ones are refused). The ipsec.secrets line
 * for a PSK is a commented block at the end of the same text, to be copied into a .secrets file.
 *
 * Option names follow Libreswan's ipsec.conf(5): keyexchange=ikev2 (ikev2=insist was removed in
 * Libreswan 3.28 and ikev2= is deprecated since 5.0), ipsec-lifetime= (salifetime= before 4.8),
 * encapsulation=yes (ESP in UDP 4500 from the
 * start, like strongSwan's encap = yes), dpddelay= (with IKEv2 the retransmit timeout declares a
 * peer dead, so no dpdtimeout=), auto=start or auto=ondemand (the trap case of swanctl.ts).
 */

/** Lifetimes: rekey between 5 % and 10 % before the shorter lifetime (rekeymargin × (1 + rekeyfuzz)). */
const REKEY_MARGIN_FRACTION = 0.05;
/**
 * Libreswan's longest ipsec-lifetime= (its ipsec.conf(5)); a longer ESP lifetime of ours is written
 * as this, and Libreswan then rekeys before this gateway would, which it answers like any rekey.
 */
const LIBRESWAN_MAX_IPSEC_LIFETIME_SEC = 86400;

/** An identity in Libreswan's syntax: an IP, @fqdn, user@host, or a quoted DN. */
function libreswanId(id: Identity, what: string): string {
  let v: string;
  switch (id.type) {
    case IdType.ID_IPV4_ADDR:
    case IdType.ID_IPV6_ADDR:
      return bytesToIp(id.data);
    case IdType.ID_FQDN:
      v = `@${id.data.toString('latin1')}`;
      break;
    case IdType.ID_RFC822_ADDR:
      v = id.data.toString('latin1');
      break;
    case IdType.ID_DER_ASN1_DN:
      v = dnToString(id.data);
      break;
    default:
      throw new ConfigError(what, id.text, 'an identity Libreswan can name (an IP, FQDN, email or DN)');
  }
  if (/["\\\x00-\x1f\x7f]/.test(v)) {
    throw new ConfigError(what, id.text, 'an identity without double quotes, backslashes or control characters (it goes into the peer\'s config file)');
  }
  return /^[A-Za-z0-9._:@%/+*-]+$/.test(v) ? v : `"${v}"`;
}

export function libreswanText(f: ExportFacts): string {
  const ike = libreswanIke(f.parsedIke);
  const esp = libreswanEsp(f.parsedEsp);
  const cert = f.auth.kind === 'cert' ? f.auth : null;
  const leftId = f.peerId ? libreswanId(f.peerId, 'customer gateway id') : null;
  const rightId = libreswanId(f.ourId, 'ike.localId');
  const espLifetimeSec = Math.min(f.espLifetimeSec, LIBRESWAN_MAX_IPSEC_LIFETIME_SEC);
  const marginSec = Math.max(1, Math.floor(Math.min(f.ikeLifetimeSec, espLifetimeSec) * REKEY_MARGIN_FRACTION));
  const L: string[] = [];
  L.push(`# Libreswan ipsec.conf: the customer side of VPN connection ${f.name} of gateway ${f.gatewayName}.`);
  L.push('# Needs Libreswan 5.0 or later (all subnets in one Child SA). Left is your gateway, right the cloud.');
  L.push(`# Install: copy it to /etc/ipsec.d/${f.name}.conf${cert ? '' : `, the secrets line at the end to /etc/ipsec.d/${f.name}.secrets`},`);
  L.push(`# then run: ipsec add ${f.name} && ipsec ${f.peerStarts ? 'up' : 'route'} ${f.name}   (or restart the ipsec service)`);
  if (cert) {
    L.push('# Certificate authentication: Libreswan keeps certificates in its NSS database (/var/lib/ipsec/nss).');
    L.push(`#   ipsec import ${f.name}.p12: your gateway's certificate and key, with the friendly name ${f.name}`);
    L.push(`#     (leftcert= below), issued by ${commentText(cert.peerCas.join(' or '))} (this gateway trusts no other CA for you)`);
    L.push(`#   certutil -d sql:/var/lib/ipsec/nss -A -t "CT,," -n ${f.name}-ca -i ${f.name}-ca.pem: the CA that issued`);
    L.push(`#     this gateway's certificate, ${commentText(cert.ourIssuer)}`);
    if (cert.ourKey === 'rsa') {
      L.push('# authby=rsa-sha1: this gateway verifies RSA signatures in PKCS#1 v1.5 form, and Libreswan\'s');
      L.push('# rsasig uses RSASSA-PSS with SHA-2 under RFC 7427; your certificate must hold an RSA key too.');
    } else {
      L.push('# authby=ecdsa: your certificate must hold an ECDSA key too.');
    }
  } else {
    L.push('# THIS FILE HOLDS THE PRE-SHARED KEY (the secrets line at the end): keep it private (chmod 600).');
  }
  if (f.ourAddrs.length > 1) L.push(`# The cloud gateway is reachable on ${f.ourAddrs.join(', ')}; Libreswan takes one right= address.`);
  L.push(`conn ${f.name}`);
  L.push('\tkeyexchange=ikev2');
  L.push(`\tleft=${f.peerAddr ?? '%defaultroute'}`);
  if (leftId) L.push(`\tleftid=${leftId}`);
  if (cert) {
    L.push(`\tleftcert=${f.name}`);
    L.push('\tleftsendcert=always');
  }
  L.push(`\tleftsubnet=${f.peerSubnets.join(',')}`);
  L.push(`\tright=${f.ourAddrs[0]}`);
  L.push(`\trightid=${rightId}`);
  L.push(`\trightsubnet=${f.ourSubnets.join(',')}`);
  L.push(`\tauthby=${cert ? (cert.ourKey === 'rsa' ? 'rsa-sha1' : 'ecdsa') : 'secret'}`);
  L.push(`\tike=${ike}`);
  L.push(`\tesp=${esp.esp}`);
  L.push(`\tpfs=${esp.pfs ? 'yes' : 'no'}`);
  L.push(`\tesn=${esp.esn}`);
  L.push(`\tikelifetime=${oneUnitDuration(f.ikeLifetimeSec)}`);
  L.push(`\tipsec-lifetime=${oneUnitDuration(espLifetimeSec)}`);
  L.push(`\trekeymargin=${oneUnitDuration(marginSec)}`);
  L.push('\trekeyfuzz=100%');
  L.push('\tencapsulation=yes');
  L.push('\tmobike=no');
  if (f.dpdSec !== null) L.push(`\tdpddelay=${oneUnitDuration(f.dpdSec)}`);
  L.push(`\tauto=${f.peerStarts ? 'start' : 'ondemand'}`);
  if (f.auth.kind === 'psk') {
    L.push('');
    L.push(`# /etc/ipsec.d/${f.name}.secrets (chmod 600), without the leading "# ":`);
    L.push(`# ${leftId ?? '%any'} ${rightId} : PSK ${pskValue(f.auth.secret)}`);
  }
  return `${L.join('\n')}\n`;
}

