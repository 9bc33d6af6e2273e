/**
 * The local user backend of the SSL VPN servers: the `users` section of the config the daemon runs
 * (stored as `user` resources, src/gateway/resources.ts) and scrypt password hashes (RFC 7914).
 *
 * A hash is one self-describing string, so the cost parameters can be raised later without
 * invalidating stored users:
 *
 *   $scrypt$N=16384,r=8,p=1$<salt, base64>$<hash, base64>
 *
 * Hashing and checking use the asynchronous `crypto.scrypt` (libuv's thread pool: the event loop
 * never waits for the ~50 ms of work) and compare in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { VpnError } from '../common/errors.js';
import type { Authenticator, AuthVerdict } from '../ssl/server/authenticator.js';
import type { Out } from './config/field-table.js';
import type { USER } from './config/sections.js';

export type UserConfig = Out<typeof USER>;

// --- implementation choices ---
/** scrypt cost for new hashes: N=2^14, r=8, p=1 (the interactive-login values of RFC 7914 §2 / libsodium) */
export const SCRYPT_DEFAULTS = Object.freeze({ N: 16384, r: 8, p: 1 });
export const SALT_BYTES = 16;
export const HASH_BYTES = 32;
/** cost bounds a stored hash may name (a hostile store must not make one check take minutes or gigabytes) */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
/** passwords longer than this are refused before hashing (OpenVPN clients send at most 4 KiB) */
export const PASSWORD_MAX = 4096;

export const PASSWORD_HASH_FORMAT = '$scrypt$N=<n>,r=<r>,p=<p>$<salt base64>$<hash base64>';

export interface PasswordHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const HASH_RE = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Parses a stored hash; null if it is not one this backend can check. */
export function parsePasswordHash(text: string): PasswordHash | null {
  const m = HASH_RE.exec(text);
  if (!m) return null;
  const N = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (!Number.isSafeInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return null;
  if (r < 1 || r > MAX_R || p < 1 || p > MAX_P) return null;
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return null;
  return { N, r, p, salt, hash };
}

export function formatPasswordHash(h: PasswordHash): string {
  return `$scrypt$N=${h.N},r=${h.r},p=${h.p}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
}

function scryptAsync(password: string, salt: Buffer, len: number, o: { N: number; r: number; p: number }): Promise<Buffer> {
  // maxmem: scrypt needs 128·N·r bytes; Node's default cap (32 MiB) would refuse the larger costs we accept
  const opts: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, len, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A new hash of `password` with a random salt. */
export async function hashPassword(password: string, cost: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new VpnError('ERR_BAD_REQUEST', 'the password must be a non-empty string');
  if (password.length > PASSWORD_MAX) throw new VpnError('ERR_BAD_REQUEST', `the password is longer than ${PASSWORD_MAX} characters`);
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(password, salt, HASH_BYTES, cost);
  return formatPasswordHash({ ...cost, salt, hash });
}

/** True if `password` matches the stored hash (constant-time compare; false for a malformed hash). */
export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const h = parsePasswordHash(stored);
  if (!h || password.length > PASSWORD_MAX) return false;
  const got = await scryptAsync(password, h.salt, h.hash.length, h);
  return timingSafeEqual(got, h.hash);
}

/**
 * A hash nobody's password matches, checked for unknown users so that a refusal takes as long
 * whether or not the user exists.
 */
let decoyHash: Promise<string> | null = null;
function decoy(): Promise<string> {
  decoyHash ??= hashPassword(randomBytes(16).toString('base64'));
  return decoyHash;
}

/**
 * The Authenticator of the gateway's SSL VPN servers over the `users` section. `users()` is read
 * per login, so a user created, changed or disabled through the API or CLI counts at the next login
 * (the daemon's config changes live; the servers are not restarted for it).
 */
export class LocalUserAuthenticator implements Authenticator {
  constructor(private readonly users: () => readonly UserConfig[]) {}

  async verify(user: string, password: string, server: string): Promise<AuthVerdict> {
    const u = this.users().find((x) => x.name === user);
    if (!u) {
      await checkPassword(password, await decoy());
      return { ok: false, reason: 'unknown user' };
    }
    if (!(await checkPassword(password, u.passwordHash.reveal()))) return { ok: false, reason: 'wrong password' };
    if (u.disabled) return { ok: false, reason: 'user disabled' };
    if (u.servers && !u.servers.includes(server)) return { ok: false, reason: 'user not allowed on this vpn server' };
    return { ok: true, reason: '' };
  }
}
