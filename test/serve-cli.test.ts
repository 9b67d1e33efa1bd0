/**
 * `stegostream serve` as a user runs it (dist/cli.js in a child process): bad pipeline files, and
 * a graceful shutdown on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Msg } from 'nats';
import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import { CLI, runCli, startCli, tempDir } from './helpers/cli.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { freeUdpPort, StreamPusher } from './helpers/stream-pusher.js';

const ROV_LIVE = fileURLToPath(new URL('../pipelines/rov-live.yaml', import.meta.url));

describe('stegostream serve', () => {
  it('exits 1 on a pipeline file with errors, naming the file, the path and the problem', async () => {
    const dir = await tempDir();
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'sources:\n  - use: scene\n    name: reef\n    with: { fps: 15, colour: red }\nservice: { port: 80a }\n');
    const r = await runCli(['serve', bad, '--log-level', 'warn']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `stegostream: Invalid pipeline file "${bad}":\n  service.port: expected integer 0-65535, received "80a"\n  sources[0].with: unknown key "colour" [E_CONFIG]\n`,
    );

    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'sources:\n  - { use: scene, name: reef\n');
    const y = await runCli(['serve', broken, '--log-level', 'warn']);
    expect(y.code).toBe(1);
    expect(y.stderr).toMatch(
      new RegExp(
        `^stegostream: Invalid pipeline file "${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}":\n {2}YAML: .+ at line \\d+, column \\d+ \\[E_CONFIG\\]\n$`,
      ),
    );

    const none = join(dir, 'none.yaml');
    const n = await runCli(['serve', none, '--log-level', 'warn']);
    expect(n.code).toBe(1);
    expect(n.stderr).toBe(
      `stegostream: Cannot read pipeline file "${none}": no such file or folder. Check the path. [E_INPUT_NOT_FOUND]\n`,
    );
  });

  it('on SIGTERM finishes, writes the checkpoint, closes WebSocket clients with 1001 and exits 0', async () => {
    const dir = await tempDir();
    const checkpoint = join(dir, 'heads', 'reef.ckpt');
    const file = join(dir, 'serve.yaml');
    await writeFile(
      file,
      `name: cli-sigterm
service: { port: 0, shutdownTimeoutMs: 30000 }
sources:
  - { use: scene, name: reef, with: { fps: 15 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 1000, checkpoint: "${checkpoint}" }
`,
    );
    const { child, done } = startCli(['serve', file, '--log-level', 'warn']);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    await expect.poll(() => /viewer at (http:\/\/127\.0\.0\.1:\d+)\//.test(stdout), { timeout: 20_000 }).toBe(true);
    const url = /viewer at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)![1]!;
    expect(stdout).toBe(`stegostream: pipeline "cli-sigterm" running; viewer at ${url}/\n`);

    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
    let stats = 0;
    let closeCode: number | undefined;
    ws.on('message', (d: Buffer, isBinary) => void (!isBinary && JSON.parse(d.toString('utf8')).type === 'stats' && stats++));
    const closed = new Promise<void>((resolve) =>
      ws.on('close', (code) => {
        closeCode = code;
        resolve();
      }),
    );
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats'] }));
    await expect.poll(() => stats, { timeout: 20_000 }).toBeGreaterThanOrEqual(5);

    child.kill('SIGTERM');
    const r = await done;
    await closed;
    expect(r.stderr).toBe('SIGTERM: shutting down (again to force)\n');
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    // Exit code 0 says the shutdown finished within shutdownTimeoutMs (past it, serve forces exit 1);
    // the timeout is generous so that a busy machine does not pass it.
    expect(closeCode).toBe(1001);
    expect(existsSync(checkpoint)).toBe(true);
    expect(statSync(checkpoint).size).toBeGreaterThan(0);
  });

  it.skipIf(natsServerMissing() !== undefined)(
    'serves pipelines/rov-live.yaml as the issue runs it: an RTP feed in; stats over WebSocket and NATS out',
    async () => {
      const dir = await tempDir();
      const nats = await NatsServer.start();
      const port = await freeUdpPort(true);
      const pusher = StreamPusher.start({ kind: 'rtp', port, sdpFile: join(dir, 'sender.sdp') });
      // cwd: the pipeline's checkpoint path (.stegostream/rov-live.ckpt) is relative.
      const child = spawn(process.execPath, [CLI, 'serve', ROV_LIVE, '--log-level', 'warn'], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          PORT: '0',
          STEGO_HOST: '127.0.0.1',
          STEGO_TOKEN: '',
          ROV_URL: `rtp://127.0.0.1:${port}`,
          NATS_URL: nats.url,
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const nc = await connect({ servers: nats.url });
      try {
        const natsStats: Msg[] = [];
        nc.subscribe('stegostream.rov.stats', { callback: (_e, m) => void natsStats.push(m) });
        await nc.flush();
        await expect.poll(() => /viewer at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)?.[1], { timeout: 20_000 }).toBeDefined();
        const url = /viewer at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)![1]!;
        expect(stdout).toBe(`stegostream: pipeline "rov-live" running; viewer at ${url}/\n`);

        const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
        let wsStats = 0;
        ws.on('message', (d: Buffer, isBinary) => void (!isBinary && JSON.parse(d.toString('utf8')).type === 'stats' && wsStats++));
        await new Promise((resolve) => ws.once('open', resolve));
        ws.send(JSON.stringify({ type: 'subscribe', streams: ['rov'], channels: ['stats'] }));
        await expect.poll(() => wsStats >= 5 && natsStats.length >= 5, { timeout: 20_000 }).toBe(true);
        expect(JSON.parse(Buffer.from(natsStats[0]!.data).toString('utf8'))).toMatchObject({ stream: 'rov' });
        await expect.poll(async () => (await fetch(`${url}/readyz`)).status).toBe(200);
        ws.terminate();

        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(existsSync(join(dir, '.stegostream', 'rov-live.ckpt'))).toBe(true);
        expect(stderr).toBe('SIGTERM: shutting down (again to force)\n');
      } finally {
        child.kill('SIGKILL');
        await nc.close();
        await pusher.stop();
        await nats.dispose();
      }
    },
  );
});
