/**
 * The one place every NATS connection (the NATS sink and its control service, ingest, worker,
 * trainer, collect, `process --cluster`, `doctor --nats`) gets its credentials and TLS from.
 * Secrets are read here, before any I/O on the network, from files or from values already expanded
 * from the environment; what leaves this module for logs (`describe`) names methods, never secrets.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator, type ConnectionOptions, type TlsOptions } from 'nats';
import { NatsSecurityError } from '../errors.js';

export interface NatsTlsSettings {
  /** PEM of the CA that signed the server's certificate (when it is not a public one). */
  readonly caFile?: string | undefined;
  /** PEM client certificate, for servers that verify clients (mutual TLS). */
  readonly certFile?: string | undefined;
  /** PEM private key of certFile. */
  readonly keyFile?: string | undefined;
  /** Host name the server's certificate must carry, when it differs from the URL's. */
  readonly serverName?: string | undefined;
}

/** The security keys of a NATS connection; at most one of user, token, nkeySeedFile, credsFile. */
export interface NatsSecurity {
  readonly user?: string | undefined;
  readonly pass?: string | undefined;
  readonly passFile?: string | undefined;
  readonly token?: string | undefined;
  readonly tokenFile?: string | undefined;
  readonly nkeySeedFile?: string | undefined;
  readonly credsFile?: string | undefined;
  readonly tls?: NatsTlsSettings | undefined;
}

export type NatsAuthMethod = 'none' | 'user/password' | 'token' | 'nkey' | 'creds';

/** What `resolveNatsSecurity` gives: the options to spread into `connect()`, and what was used. */
export interface ResolvedNatsSecurity {
  readonly options: Pick<ConnectionOptions, 'user' | 'pass' | 'token' | 'authenticator' | 'tls'>;
  readonly auth: NatsAuthMethod;
  readonly tls: 'none' | 'tls' | 'mutual tls';
  /** Every secret value, so that messages can be scrubbed of them. */
  readonly secrets: readonly string[];
}

const NO_SECURITY: ResolvedNatsSecurity = { options: {}, auth: 'none', tls: 'none', secrets: [] };

function readSecret(connection: string, key: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new NatsSecurityError(connection, `cannot read ${key} "${path}" (${code})`, `give ${key} a readable file`, err);
  }
  return text.trim();
}

/** Fails at start-up on a creds file that is not one, or whose JWT has expired. */
function checkCreds(connection: string, path: string, creds: string): void {
  const jwt = /-----BEGIN NATS USER JWT-----\s*\n\s*(\S+)\s*\n/.exec(creds)?.[1];
  const seed = /-----BEGIN USER NKEY SEED-----\s*\n\s*(SU[A-Z2-7]+)\s*\n/.exec(creds)?.[1];
  const fix = 'issue a new creds file for this user (nsc generate creds, or from your NATS provider) and point credsFile at it';
  if (jwt === undefined || seed === undefined) {
    throw new NatsSecurityError(connection, `credsFile "${path}" is malformed (expected a NATS USER JWT and a USER NKEY SEED block)`, fix);
  }
  let claims: { exp?: unknown };
  try {
    claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
  } catch (err) {
    throw new NatsSecurityError(connection, `credsFile "${path}" is malformed (its JWT does not decode)`, fix, err);
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
    throw new NatsSecurityError(connection, `credsFile "${path}" has expired (${new Date(claims.exp * 1000).toISOString()})`, fix);
  }
}

/**
 * Reads the secret files and checks the settings. Throws NatsSecurityError naming the connection
 * when two methods are given, a file cannot be read, a creds file is malformed or expired.
 */
export function resolveNatsSecurity(connection: string, sec: NatsSecurity | undefined): ResolvedNatsSecurity {
  if (sec === undefined) return NO_SECURITY;
  const given = [
    sec.user !== undefined ? 'user' : undefined,
    sec.token !== undefined || sec.tokenFile !== undefined ? 'token' : undefined,
    sec.nkeySeedFile !== undefined ? 'nkeySeedFile' : undefined,
    sec.credsFile !== undefined ? 'credsFile' : undefined,
  ].filter((m): m is string => m !== undefined);
  if (given.length > 1) {
    throw new NatsSecurityError(connection, `several authentication methods given (${given.join(', ')})`, 'keep one of them');
  }
  if ((sec.pass !== undefined || sec.passFile !== undefined) && sec.user === undefined) {
    throw new NatsSecurityError(connection, 'a password without a user', 'give user as well');
  }
  const secrets: string[] = [];
  const options: { -readonly [K in keyof ResolvedNatsSecurity['options']]: ResolvedNatsSecurity['options'][K] } = {};
  let auth: NatsAuthMethod = 'none';
  if (sec.user !== undefined) {
    auth = 'user/password';
    options.user = sec.user;
    const pass = sec.passFile !== undefined ? readSecret(connection, 'passFile', sec.passFile) : sec.pass;
    if (pass !== undefined) {
      options.pass = pass;
      secrets.push(pass);
    }
  } else if (sec.token !== undefined || sec.tokenFile !== undefined) {
    auth = 'token';
    const token = sec.tokenFile !== undefined ? readSecret(connection, 'tokenFile', sec.tokenFile) : (sec.token as string);
    options.token = token;
    secrets.push(token);
  } else if (sec.nkeySeedFile !== undefined) {
    auth = 'nkey';
    const seed = readSecret(connection, 'nkeySeedFile', sec.nkeySeedFile);
    if (!/^SU[A-Z2-7]{50,}$/.test(seed)) {
      throw new NatsSecurityError(
        connection,
        `nkeySeedFile "${sec.nkeySeedFile}" does not hold a user NKey seed (one line starting with SU)`,
        'point nkeySeedFile at the seed made by `nk -gen user`',
      );
    }
    options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed)) as Authenticator;
    secrets.push(seed);
  } else if (sec.credsFile !== undefined) {
    auth = 'creds';
    // nats.js parses the blocks with their line ends: the file goes on as it is, with a final newline.
    const creds = `${readSecret(connection, 'credsFile', sec.credsFile)}\n`;
    checkCreds(connection, sec.credsFile, creds);
    options.authenticator = credsAuthenticator(new TextEncoder().encode(creds)) as Authenticator;
    const seed = /(SU[A-Z2-7]{50,})/.exec(creds)?.[1];
    if (seed !== undefined) secrets.push(seed);
  }
  let tls: ResolvedNatsSecurity['tls'] = 'none';
  if (sec.tls !== undefined) {
    const t = sec.tls;
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
      throw new NatsSecurityError(connection, 'tls.certFile and tls.keyFile go together', 'give both, or neither');
    }
    const tlsOptions: TlsOptions & { servername?: string } = {};
    // Read here rather than by nats.js, so that a missing file fails at start-up with its name.
    if (t.caFile !== undefined) tlsOptions.ca = readSecret(connection, 'tls.caFile', t.caFile);
    if (t.certFile !== undefined) tlsOptions.cert = readSecret(connection, 'tls.certFile', t.certFile);
    if (t.keyFile !== undefined) {
      tlsOptions.key = readSecret(connection, 'tls.keyFile', t.keyFile);
      secrets.push(tlsOptions.key);
    }
    // nats.js passes the object on to tls.connect, which takes `servername`.
    if (t.serverName !== undefined) tlsOptions.servername = t.serverName;
    options.tls = tlsOptions;
    tls = t.certFile !== undefined ? 'mutual tls' : 'tls';
  }
  return { options, auth, tls, secrets };
}

/** "creds, mutual tls": what a connection used, for logs and doctor (no secrets). */
export function describeNatsSecurity(r: ResolvedNatsSecurity): string {
  return `auth ${r.auth}, ${r.tls === 'none' ? 'no tls' : r.tls}`;
}

function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}

/**
 * Turns what nats.js threw on connect (or reported on a running connection) into one line naming
 * the connection, the cause and the fix. Errors that are not about security come back as they are.
 */
export function explainNatsError(connection: string, err: unknown, sec: ResolvedNatsSecurity = NO_SECURITY): unknown {
  const e = err as { code?: string; message?: string };
  const msg = scrub(String(e.message ?? err), sec.secrets);
  const code = String(e.code ?? '');
  const lower = msg.toLowerCase();
  if (code === 'AUTHENTICATION_EXPIRED' || lower.includes('authentication expired') || lower.includes('user authentication revoked')) {
    return new NatsSecurityError(
      connection,
      `the server says the credentials (${sec.auth}) have expired`,
      'issue new credentials for this user',
      err,
    );
  }
  if (code === 'BAD_CREDS' || code === 'BAD_AUTHENTICATION') {
    return new NatsSecurityError(
      connection,
      `the ${sec.auth === 'none' ? 'credentials' : sec.auth} could not be used (${code})`,
      'give a creds file or NKey seed as nsc or nk wrote it',
      err,
    );
  }
  if (code === 'AUTHORIZATION_VIOLATION' || lower.includes('authorization violation')) {
    const which =
      sec.auth === 'none'
        ? 'the server requires credentials and none were given'
        : `the server rejected the credentials (${sec.auth}): wrong or unknown`;
    return new NatsSecurityError(
      connection,
      which,
      'check user/pass, token, nkeySeedFile or credsFile (CLI: --nats-user, --nats-pass-file, --nats-token-file, --nats-nkey-seed-file, --nats-creds) against the server',
      err,
    );
  }
  if (code === 'PERMISSIONS_VIOLATION' || lower.includes('permissions violation')) {
    return new NatsSecurityError(
      connection,
      `the server refused a subject to this user (${msg})`,
      "grant the subject to this user's permissions in the server's configuration (see deploy/nats.conf)",
      err,
    );
  }
  if (
    /self[- ]signed|unable to (verify|get local issuer)|certificate (has expired|is not yet valid)|hostname\/ip does not match|altnames|err_tls_cert/.test(
      lower,
    ) ||
    /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_HAS_EXPIRED|ERR_TLS_CERT_ALTNAME_INVALID)$/.test(
      code,
    )
  ) {
    return new NatsSecurityError(
      connection,
      `the server's TLS certificate is not trusted (${msg})`,
      'give the CA that signed it as tls.caFile (CLI: --nats-ca), and tls.serverName if the URL names another host',
      err,
    );
  }
  if (code === 'tls' || lower.includes('server does not support tls') || lower.includes('tls required')) {
    return new NatsSecurityError(
      connection,
      `TLS settings do not match the server (${msg})`,
      'use tls:// URLs and tls.caFile for a TLS server, or drop tls for a plain one',
      err,
    );
  }
  return err;
}

/**
 * The same for an `error` status of a running connection, where nats.js gives the code as `data`
 * and the refused subject as `permissionContext`.
 */
export function explainNatsStatus(
  connection: string,
  status: { data?: unknown; permissionContext?: { operation?: string; subject?: string } },
  sec: ResolvedNatsSecurity = NO_SECURITY,
): unknown {
  const ctx = status.permissionContext;
  const code = typeof status.data === 'string' ? status.data : undefined;
  if (code === undefined) return explainNatsError(connection, status.data, sec);
  const message = ctx?.subject !== undefined ? `${ctx.operation ?? 'use'} "${ctx.subject}"` : code;
  return explainNatsError(connection, { code, message }, sec);
}

/** True for the errors that retrying with the same settings cannot fix. */
export function isNatsSecurityFailure(err: unknown): boolean {
  return err instanceof NatsSecurityError;
}

/**
 * Servers and security options for `connect()`. A `tls://` URL turns TLS on (nats.js only knows
 * `nats://` and upgrades when asked), so the URL alone is enough against a server with a public CA.
 */
export function natsConnectOptions(
  connection: string,
  servers: string | readonly string[],
  sec: NatsSecurity | undefined,
): { readonly servers: string[]; readonly options: ResolvedNatsSecurity['options']; readonly security: ResolvedNatsSecurity } {
  const list = [servers].flat();
  const wantsTls = list.some((s) => s.startsWith('tls://'));
  const resolved = resolveNatsSecurity(connection, sec);
  const security: ResolvedNatsSecurity =
    wantsTls && resolved.tls === 'none' ? { ...resolved, options: { ...resolved.options, tls: {} }, tls: 'tls' } : resolved;
  return { servers: list.map((s) => s.replace(/^tls:\/\//, 'nats://')), options: security.options, security };
}

/** The security keys of a config object (a nats sink's `with`), dropping the rest. */
export function natsSecurityOf(w: NatsSecurity): NatsSecurity {
  const { user, pass, passFile, token, tokenFile, nkeySeedFile, credsFile, tls } = w;
  return { user, pass, passFile, token, tokenFile, nkeySeedFile, credsFile, tls };
}
