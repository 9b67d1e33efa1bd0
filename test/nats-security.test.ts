/**
 * NATS security end to end: a real nats-server with mutual TLS (CA, server and client certificates
 * made here with openssl) and users (password, NKey, a subscribe-only viewer), and a second one with
 * a token. The NATS sink, the cluster connection every role opens, and the CLI (doctor, a cluster
 * role) connect with each method; wrong credentials, an untrusted CA, a forbidden subject and bad
 * creds files give one clear line; no secret reaches a log line.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { nkeys, type NatsConnection } from 'nats';

type KeyPair = ReturnType<typeof nkeys.createUser>;
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCluster, ensureFramesStream } from '../src/cluster/cluster-connection.js';
import { NatsSecurityError } from '../src/errors.js';
import { natsSecurityOf, resolveNatsSecurity } from '../src/internal/nats-security.js';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { natsPublisher } from '../src/sinks/nats-publisher.js';
import { runCli, tempDir } from './helpers/cli.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';

const PASS = 'alice-Pa55-9f3k2q';
const VIEWER_PASS = 'viewer-Pa55-7h1x0z';
const TOKEN = 'tok-4b2c9e7a1d';
const WRONG_PASS = 'wrong-Pa55-0000';
const opensslMissing = ((): string | undefined => {
  try {
    execFileSync('openssl', ['version']);
    return undefined;
  } catch {
    return 'openssl not runnable';
  }
})();

/** A pino logger whose lines are kept, to grep them for secrets and messages. */
function capturedLogger(all: string[]): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done): void {
      const got = chunk
        .toString()
        .split('\n')
        .filter((l) => l !== '');
      lines.push(...got);
      all.push(...got);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and another (untrusted) CA. */
function makeCertificates(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=stego-test-ca');
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=other-ca');
  for (const who of ['server', 'client']) {
    openssl(
      dir,
      'req',
      ...ec,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=${who === 'server' ? 'localhost' : 'stego-client'}`,
    );
    const ext = join(dir, `${who}.ext`);
    execFileSync('sh', [
      '-c',
      `printf '%s\\n' "${who === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost' : 'extendedKeyUsage=clientAuth'}" > ${ext}`,
    ]);
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${who}.pem`,
      '-days',
      '2',
      '-extfile',
      ext,
    );
  }
}

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

/** A NATS JWT (what nsc makes), signed by `issuer`: operator, account or user claims. */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  claims['jti'] = createHash('sha256').update(JSON.stringify(claims)).digest('hex').toUpperCase().slice(0, 52);
  const signed = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(issuer.sign(new TextEncoder().encode(signed)))}`;
}

/** Operator mode: an operator, an account with JetStream, and a worker user denied control subjects; writes the server config and the user's .creds. */
async function writeOperatorMode(dir: string): Promise<{ configFile: string; credsFile: string; seed: string }> {
  const op = nkeys.createOperator();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const system = nkeys.createAccount(); // JetStream needs a system account in operator mode
  const unlimited = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true };
  const accountJwt = natsJwt(op, account.getPublicKey(), 'STEGO', {
    type: 'account',
    limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
  });
  const userJwt = natsJwt(account, user.getPublicKey(), 'worker', {
    type: 'user',
    pub: { deny: ['stegostream.ctl.>'] },
    sub: {},
    subs: -1,
    data: -1,
    payload: -1,
  });
  const configFile = join(dir, 'operator.conf');
  await writeFile(
    configFile,
    `operator: ${natsJwt(op, op.getPublicKey(), 'OP', { type: 'operator' })}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: ${accountJwt}\n  ${system.getPublicKey()}: ${natsJwt(op, system.getPublicKey(), 'SYS', { type: 'account', limits: unlimited })}\n}\n`,
  );
  const seed = new TextDecoder().decode(user.getSeed());
  const credsFile = join(dir, 'worker.creds');
  await writeFile(
    credsFile,
    `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
  );
  return { configFile, credsFile, seed };
}

describe.skipIf(natsServerMissing() !== undefined || opensslMissing !== undefined)('NATS security', () => {
  let dir: string;
  let secure: NatsServer; // mutual TLS + users
  let tokenServer: NatsServer;
  let nkeySeed: string;
  const opened: NatsConnection[] = [];
  const allLines: string[] = [];

  const tls = (): { caFile: string; certFile: string; keyFile: string } => ({
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'client.pem'),
    keyFile: join(dir, 'client.key'),
  });
  const secureUrl = (): string => `tls://127.0.0.1:${secure.port}`;
  // Every test's lines also end up in one list, grepped for secrets at the end.
  const logger = (): { logger: Logger; lines: string[] } => capturedLogger(allLines);

  beforeAll(async () => {
    dir = await tempDir('stego-nats-sec-');
    makeCertificates(dir);
    const user = nkeys.createUser();
    nkeySeed = new TextDecoder().decode(user.getSeed());
    await writeFile(join(dir, 'user.nk'), nkeySeed + '\n');
    await writeFile(join(dir, 'pass'), PASS + '\n');
    await writeFile(join(dir, 'wrong-pass'), WRONG_PASS + '\n');
    await writeFile(join(dir, 'token'), TOKEN + '\n');
    await writeFile(
      join(dir, 'secure.conf'),
      `tls {
  cert_file: "${join(dir, 'server.pem')}"
  key_file: "${join(dir, 'server.key')}"
  ca_file: "${join(dir, 'ca.pem')}"
  verify: true
  timeout: 5
}
authorization {
  users = [
    { user: "alice", password: "${PASS}" }
    { nkey: "${user.getPublicKey()}" }
    { user: "viewer", password: "${VIEWER_PASS}", permissions: { publish: { allow: ["_INBOX.>"] }, subscribe: { allow: [">"] } } }
  ]
}
`,
    );
    await writeFile(join(dir, 'token.conf'), `authorization { token: "${TOKEN}" }\n`);
    [secure, tokenServer] = await Promise.all([
      NatsServer.start({ configFile: join(dir, 'secure.conf') }),
      NatsServer.start({ configFile: join(dir, 'token.conf') }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(opened.map((nc) => nc.close()));
    await Promise.allSettled([secure?.dispose(), tokenServer?.dispose()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the cluster connection (every role opens it) works with a password, an NKey and a token, over mutual TLS where the server asks', async () => {
    const { logger: log, lines } = logger();
    const viaPass = await connectCluster(secureUrl(), 'stegostream-worker', log, {
      user: 'alice',
      passFile: join(dir, 'pass'),
      tls: tls(),
    });
    const viaNkey = await connectCluster(secureUrl(), 'stegostream-trainer', log, { nkeySeedFile: join(dir, 'user.nk'), tls: tls() });
    const viaToken = await connectCluster(tokenServer.url, 'stegostream-ingest', log, { tokenFile: join(dir, 'token') });
    opened.push(viaPass, viaNkey, viaToken);
    // JetStream works through each (the roles' first call).
    await ensureFramesStream(await viaNkey.jetstreamManager(), 'sec');
    await ensureFramesStream(await viaToken.jetstreamManager(), 'sec');
    expect(await viaPass.rtt()).toBeGreaterThanOrEqual(0);
    const connected = lines.filter((l) => l.includes('connected to NATS')).map((l) => JSON.parse(l) as { security: string });
    expect(connected.map((c) => c.security)).toEqual(['auth user/password, mutual tls', 'auth nkey, mutual tls', 'auth token, no tls']);
  });

  it('the NATS sink and its control service connect with credentials and TLS from the pipeline YAML', async () => {
    const yaml = `sources:\n  - { use: scene, name: reef }\nsinks:\n  - use: nats\n    with:\n      servers: ${secureUrl()}\n      prefix: secsink\n      user: alice\n      pass: \${ALICE_PASS}\n      tls: { caFile: ${tls().caFile}, certFile: ${tls().certFile}, keyFile: ${tls().keyFile} }\n`;
    const config = parsePipeline(yaml, 'test.yaml', { ALICE_PASS: PASS });
    const sink = config.sinks?.find((k) => k.use === 'nats');
    if (sink?.use !== 'nats') throw new Error('no nats sink parsed');
    expect(() => parsePipeline(yaml.replace('tls: {', 'tls: { caFil: x,'), 'test.yaml', { ALICE_PASS: PASS })).toThrow(/caFil/);
    const { logger: log } = logger();
    const pub = natsPublisher({
      servers: sink.with.servers,
      prefix: sink.with.prefix,
      logger: log,
      name: 'stegostream-sink-test',
      security: natsSecurityOf(sink.with),
      control: {
        renameClass: () => [],
        pauseLearning: () => undefined,
        resumeLearning: () => undefined,
        snapshotHead: () => Promise.resolve({ path: 'h', version: 1 }),
        status: () => ({ secured: true }),
      },
    });
    const client = await connectCluster(secureUrl(), 'stegostream-operator-test', log, {
      user: 'alice',
      passFile: join(dir, 'pass'),
      tls: tls(),
    });
    opened.push(client);
    try {
      await pub.ready();
      expect(pub.status().connected).toBe(true);
      const reply = await client.request('secsink.ctl.status', new TextEncoder().encode('{}'), { timeout: 10_000 });
      expect(JSON.parse(new TextDecoder().decode(reply.data))).toMatchObject({ ok: true, verb: 'status', status: { secured: true } });
    } finally {
      await pub.close();
    }
  });

  it('a wrong password fails at once with one line naming the connection, the cause and the fix', async () => {
    const { logger: log } = logger();
    const err = await connectCluster(secureUrl(), 'stegostream-collect', log, {
      user: 'alice',
      passFile: join(dir, 'wrong-pass'),
      tls: tls(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsSecurityError);
    expect((err as Error).message).toBe(
      'NATS connection "stegostream-collect": the server rejected the credentials (user/password): wrong or unknown. Fix: check user/pass, token, nkeySeedFile or credsFile (CLI: --nats-user, --nats-pass-file, --nats-token-file, --nats-nkey-seed-file, --nats-creds) against the server',
    );
  });

  it('an untrusted server certificate fails at once and says to give the CA', async () => {
    const { logger: log } = logger();
    const err = await connectCluster(secureUrl(), 'stegostream-worker', log, {
      user: 'alice',
      passFile: join(dir, 'pass'),
      tls: { ...tls(), caFile: join(dir, 'other-ca.pem') },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsSecurityError);
    expect((err as Error).message).toMatch(
      /^NATS connection "stegostream-worker": the server's TLS certificate is not trusted \(.+\)\. Fix: give the CA that signed it as tls\.caFile \(CLI: --nats-ca\)/,
    );
  });

  it('a forbidden subject is logged as one clear line and the connection stays up', async () => {
    const { logger: log, lines } = logger();
    const nc = await connectCluster(secureUrl(), 'stegostream-viewer', log, { user: 'viewer', pass: VIEWER_PASS, tls: tls() });
    opened.push(nc);
    nc.publish('secsink.cam.stats', new Uint8Array([1]));
    await waitFor('the permission line', () => lines.some((l) => l.includes('refused a subject')));
    const line = lines.find((l) => l.includes('refused a subject')) as string;
    expect((JSON.parse(line) as { msg: string }).msg).toMatch(
      /^NATS connection "stegostream-viewer": the server refused a subject to this user \(.*secsink\.cam\.stats.*\)\. Fix: grant the subject/,
    );
    expect(nc.isClosed()).toBe(false);
    expect(await nc.rtt()).toBeGreaterThanOrEqual(0);
  });

  it('a creds user (operator mode, JWTs made here) connects, uses JetStream, and is refused the control subjects', async () => {
    const om = await writeOperatorMode(dir);
    const server = await NatsServer.start({ configFile: om.configFile });
    try {
      const { logger: log, lines } = logger();
      const nc = await connectCluster(server.url, 'stegostream-worker', log, { credsFile: om.credsFile });
      opened.push(nc);
      await ensureFramesStream(await nc.jetstreamManager(), 'opmode');
      expect((JSON.parse(lines.find((l) => l.includes('connected to NATS')) as string) as { security: string }).security).toBe(
        'auth creds, no tls',
      );
      nc.publish('stegostream.ctl.rename', new Uint8Array([1]));
      await waitFor('the permission line', () => lines.some((l) => l.includes('refused a subject')));
      expect(lines.filter((l) => l.includes(om.seed))).toEqual([]);
      const doctor = await runCli(['doctor', '--json', '--nats', server.url, '--nats-creds', om.credsFile]);
      expect((JSON.parse(doctor.stdout) as { nats: object }).nats).toMatchObject({ ok: true, security: 'auth creds, no tls' });
      expect(doctor.stdout + doctor.stderr).not.toContain(om.seed);
    } finally {
      await Promise.allSettled(opened.splice(0).map((c) => c.close()));
      await server.dispose();
    }
  }, 60_000);

  it('malformed and expired creds files fail before any connection', async () => {
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const seed = nkeySeed;
    const creds = (exp: number): string =>
      `-----BEGIN NATS USER JWT-----\n${b64({ typ: 'JWT', alg: 'ed25519-nkey' })}.${b64({ exp, sub: 'U' })}.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
    await writeFile(join(dir, 'expired.creds'), creds(1_000_000));
    await writeFile(join(dir, 'bad.creds'), 'not a creds file\n');
    expect(() => resolveNatsSecurity('stegostream-ingest', { credsFile: join(dir, 'expired.creds') })).toThrow(
      `NATS connection "stegostream-ingest": credsFile "${join(dir, 'expired.creds')}" has expired (1970-01-12T13:46:40.000Z). Fix: issue a new creds file`,
    );
    expect(() => resolveNatsSecurity('stegostream-ingest', { credsFile: join(dir, 'bad.creds') })).toThrow(
      `NATS connection "stegostream-ingest": credsFile "${join(dir, 'bad.creds')}" is malformed (expected a NATS USER JWT and a USER NKEY SEED block)`,
    );
    expect(() => resolveNatsSecurity('x', { user: 'a', token: 't' })).toThrow('several authentication methods given (user, token)');
    expect(() => resolveNatsSecurity('x', { credsFile: join(dir, 'missing.creds') })).toThrow(
      `NATS connection "x": cannot read credsFile "${join(dir, 'missing.creds')}" (ENOENT). Fix: give credsFile a readable file`,
    );
  });

  it('doctor --nats checks credentials and TLS the same way and says which it used; a cluster role fails at start-up on a wrong password', async () => {
    const [pass, nkey, token, wrong, role] = await Promise.all([
      runCli([
        'doctor',
        '--json',
        '--nats',
        secureUrl(),
        '--nats-user',
        'alice',
        '--nats-pass-file',
        join(dir, 'pass'),
        '--nats-ca',
        tls().caFile,
        '--nats-cert',
        tls().certFile,
        '--nats-key',
        tls().keyFile,
      ]),
      runCli([
        'doctor',
        '--json',
        '--nats',
        secureUrl(),
        '--nats-nkey-seed-file',
        join(dir, 'user.nk'),
        '--nats-ca',
        tls().caFile,
        '--nats-cert',
        tls().certFile,
        '--nats-key',
        tls().keyFile,
      ]),
      runCli(['doctor', '--json', '--nats', tokenServer.url, '--nats-token-file', join(dir, 'token')]),
      runCli([
        'doctor',
        '--json',
        '--nats',
        secureUrl(),
        '--nats-user',
        'alice',
        '--nats-pass-file',
        join(dir, 'wrong-pass'),
        '--nats-ca',
        tls().caFile,
        '--nats-cert',
        tls().certFile,
        '--nats-key',
        tls().keyFile,
      ]),
      runCli([
        'trainer',
        '--nats',
        secureUrl(),
        '--nats-user',
        'alice',
        '--nats-pass-file',
        join(dir, 'wrong-pass'),
        '--nats-ca',
        tls().caFile,
        '--nats-cert',
        tls().certFile,
        '--nats-key',
        tls().keyFile,
      ]),
    ]);
    const nats = (r: { stdout: string }): { ok: boolean; security: string; error?: string } =>
      (JSON.parse(r.stdout) as { nats: { ok: boolean; security: string; error?: string } }).nats;
    expect(nats(pass)).toMatchObject({ ok: true, security: 'auth user/password, mutual tls' });
    expect(nats(nkey)).toMatchObject({ ok: true, security: 'auth nkey, mutual tls' });
    expect(nats(token)).toMatchObject({ ok: true, security: 'auth token, no tls' });
    expect(nats(wrong)).toMatchObject({ ok: false, security: 'auth user/password, mutual tls' });
    expect(nats(wrong).error).toMatch(/^NATS connection "stegostream-doctor": the server rejected the credentials \(user\/password\)/);
    expect(role.code).not.toBe(0);
    expect(role.stderr).toContain(
      'NATS connection "stegostream-trainer": the server rejected the credentials (user/password): wrong or unknown.',
    );
    for (const r of [pass, nkey, token, wrong, role]) allLines.push(r.stdout, r.stderr);
  }, 120_000);

  it('ingest, worker, collect and process --cluster take the same flags: each fails at start-up on a wrong password, naming itself', async () => {
    const video = join(dir, 'roles.mp4');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=96x64:rate=5:duration=1',
      '-pix_fmt',
      'yuv420p',
      '-y',
      video,
    ]);
    const secured = [
      '--nats',
      secureUrl(),
      '--nats-user',
      'alice',
      '--nats-pass-file',
      join(dir, 'wrong-pass'),
      '--nats-ca',
      tls().caFile,
      '--nats-cert',
      tls().certFile,
      '--nats-key',
      tls().keyFile,
    ];
    const roles: [string, string[]][] = [
      ['stegostream-ingest', ['ingest', video, ...secured]],
      ['stegostream-worker', ['worker', ...secured]],
      ['stegostream-collect', ['collect', '--stats', join(dir, 'roles-{stream}.csv'), ...secured]],
      ['stegostream-process', ['process', video, '--cluster', secureUrl(), '--stats', join(dir, 'roles.csv'), ...secured.slice(2)]],
    ];
    const results = await Promise.all(roles.map(([, args]) => runCli(args)));
    results.forEach((r, i) => {
      const [name] = roles[i]!;
      expect(r.code, `${name}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toContain(`NATS connection "${name}": the server rejected the credentials (user/password): wrong or unknown.`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      allLines.push(r.stdout, r.stderr);
    });
  }, 180_000);

  it('deploy/nats.conf runs and enforces its per-role permissions: workers publish results, viewers only subscribe, only operators call control', async () => {
    const conf = readFileSync(new URL('../deploy/nats.conf', import.meta.url), 'utf8')
      .replace(/^http_port:.*$/m, '')
      .replace(/store_dir: \S+/, ''); // the helper gives its own -sd
    await writeFile(join(dir, 'deploy.conf'), conf);
    const roles = ['INGEST', 'WORKER', 'TRAINER', 'VIEWER', 'OPERATOR'];
    for (const r of roles) process.env[`NATS_${r}_PASS`] = `${r.toLowerCase()}-deploy-pw`;
    const server = await NatsServer.start({ configFile: join(dir, 'deploy.conf') });
    try {
      const { logger: log, lines } = logger();
      const as = async (user: string): Promise<NatsConnection> => {
        const nc = await connectCluster(server.url, `stegostream-${user}`, log, { user, pass: `${user}-deploy-pw` });
        opened.push(nc);
        return nc;
      };
      const [worker, viewer, operator] = [await as('worker'), await as('viewer'), await as('operator')];
      const seen: string[] = [];
      const sub = viewer.subscribe('stegostream.>', { callback: (_e, m) => seen.push(m.subject) });
      await viewer.flush();
      worker.publish('stegostream.cam.stats', new Uint8Array([1]));
      operator.publish('stegostream.ctl.rename', new Uint8Array([1]));
      viewer.publish('stegostream.ctl.pause', new Uint8Array([1]));
      worker.publish('stegostream.ctl.pause', new Uint8Array([1]));
      await waitFor('both refusals', () => lines.filter((l) => l.includes('refused a subject')).length >= 2);
      await waitFor('the allowed messages', () => seen.length >= 2);
      await operator.flush();
      expect(seen.sort()).toEqual(['stegostream.cam.stats', 'stegostream.ctl.rename']);
      const refused = lines.filter((l) => l.includes('refused a subject')).map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(refused.sort()).toEqual(
        [
          expect.stringMatching(
            /^NATS connection "stegostream-viewer": the server refused a subject to this user \(publish "stegostream\.ctl\.pause"\)/,
          ),
          expect.stringMatching(
            /^NATS connection "stegostream-worker": the server refused a subject to this user \(publish "stegostream\.ctl\.pause"\)/,
          ),
        ].sort(() => 0),
      );
      sub.unsubscribe();
      const anonymous = await connectCluster(server.url, 'stegostream-anonymous', log).catch((e: unknown) => e);
      expect((anonymous as Error).message).toContain('the server requires credentials and none were given');
    } finally {
      await Promise.allSettled(opened.splice(0).map((nc) => nc.close()));
      await server.dispose();
    }
  }, 60_000);

  it('no secret appears in any log line or output', () => {
    expect(allLines.length).toBeGreaterThan(0);
    for (const secret of [PASS, VIEWER_PASS, TOKEN, WRONG_PASS, nkeySeed]) {
      expect(allLines.filter((l) => l.includes(secret))).toEqual([]);
    }
  });
});
