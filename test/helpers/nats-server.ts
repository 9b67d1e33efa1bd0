/**
 * A real nats-server for tests: `-a 127.0.0.1 -p <free port> -js -sd <tmpdir>`. It can be stopped
 * and started again on the same port with the same JetStream store, to test reconnects.
 * The binary is `$NATS_SERVER` or `nats-server` on the PATH (Debian: /usr/sbin, in root's PATH).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARY = process.env['NATS_SERVER'] ?? 'nats-server';
const START_TIMEOUT_MS = 10_000;

/** Undefined when nats-server can be run, else why not (for `describe.skipIf`). */
export function natsServerMissing(): string | undefined {
  const r = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0 ? undefined : `${BINARY} not runnable: ${r.error?.message ?? r.stderr}`;
}

/** A free TCP port on 127.0.0.1 (the OS picks; a tiny race with other processes is accepted). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export class NatsServer {
  private child: ChildProcess | undefined;
  private stderr = '';

  private constructor(
    readonly port: number,
    readonly storeDir: string,
    /** A nats-server configuration file (accounts, users, TLS); the flags above still win. */
    readonly configFile?: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  static async start(options: { readonly configFile?: string } = {}): Promise<NatsServer> {
    const server = new NatsServer(await freePort(), await mkdtemp(join(tmpdir(), 'stego-nats-')), options.configFile);
    await server.restart();
    return server;
  }

  /** (Re)starts on the same port and store; resolves once the server accepts clients. */
  async restart(): Promise<void> {
    if (this.child !== undefined) return;
    this.stderr = '';
    const config = this.configFile === undefined ? [] : ['-c', this.configFile];
    const child = spawn(BINARY, [...config, '-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(
        () => fail(new Error(`nats-server not ready after ${START_TIMEOUT_MS} ms:\n${this.stderr}`)),
        START_TIMEOUT_MS,
      );
      const fail = (err: Error): void => {
        if (ready) return;
        clearTimeout(timer);
        this.child = undefined;
        child.kill('SIGKILL');
        reject(err);
      };
      child.once('error', fail);
      child.once('exit', (code) => {
        if (this.child === child) this.child = undefined;
        fail(new Error(`nats-server exited with ${code}:\n${this.stderr}`));
      });
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        this.stderr = (this.stderr + chunk).slice(-8000);
        if (!ready && this.stderr.includes('Server is ready')) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  /** Stops the server (SIGTERM, SIGKILL after 5 s); clients see a disconnect. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Kills the server at once (SIGKILL, as a crash); with `loseStore`, its JetStream store goes too. */
  async kill(loseStore = false): Promise<void> {
    const child = this.child;
    if (child !== undefined) {
      this.child = undefined;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    if (loseStore) {
      await rm(this.storeDir, { recursive: true, force: true });
      await mkdir(this.storeDir, { recursive: true });
    }
  }

  /** Stops the server and removes its store. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}
