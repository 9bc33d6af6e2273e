/**
 * Username/password checks for the SSL VPN server (OpenVPN --auth-user-pass on the client,
 * auth-user-pass-verify or a plugin on the stock server). The session manager stays pure: it asks
 * its shell with a `verifyPassword` action, the shell calls an Authenticator and hands the verdict
 * back (`SslSessionManager.passwordVerdict`). Asynchronous, so a backend may be a local user table
 * (src/gateway/users.ts), RADIUS or LDAP.
 */

export interface AuthVerdict {
  readonly ok: boolean;
  /** why a login was refused (for the log; the client only sees AUTH_FAILED) */
  readonly reason: string;
}

export interface Authenticator {
  /** `server` is the vpn server's name: a backend may allow a user on some servers only */
  verify(user: string, password: string, server: string): Promise<AuthVerdict>;
}

/** How a server authenticates its clients (vpnServers[].auth.type). */
export type SslAuthType = 'cert' | 'password' | 'cert+password';

export function needsClientCert(t: SslAuthType): boolean {
  return t !== 'password';
}

export function needsPassword(t: SslAuthType): boolean {
  return t !== 'cert';
}
