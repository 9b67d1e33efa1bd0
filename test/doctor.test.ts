import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, runCli, tempDir, type CliResult } from './helpers/cli.js';
import { freePort, NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { providerLibraryPresent } from '../src/backbone/execution-device.js';
import { BUILTIN_NAME } from '../src/backbone/builtin-backbone.js';
import type { DoctorReport } from '../src/cli/doctor-command.js';

/** `stegostream doctor` as a user runs it, in a child process (dist/cli.js). */

function runWithEnv(args: readonly string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const json = (r: CliResult): DoctorReport => JSON.parse(r.stdout) as DoctorReport;

describe('stegostream doctor', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('stegostream-doctor-');
  });

  it('reports ffmpeg, providers, GPU and the built-in backbone; exit 0 when nothing required is missing', async () => {
    const [asJson, human] = await Promise.all([runCli(['doctor', '--json']), runCli(['doctor'])]);
    expect(asJson.code).toBe(0);
    const r = json(asJson);
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.ffmpeg).toMatchObject({ ok: true, command: 'ffmpeg', from: 'PATH', libx264: true });
    expect(r.ffmpeg.path).toMatch(/\/ffmpeg$/);
    expect(r.ffmpeg.version).toMatch(/^\d/);
    expect(r.ffprobe).toMatchObject({ ok: true, from: 'PATH' });
    expect(r.onnxruntime.version).toMatch(/^1\.\d+\.\d+/);
    expect(r.learner).toEqual({ simd: true });
    const providers = Object.fromEntries(r.onnxruntime.providers.map((p) => [p.name, p]));
    expect(providers['cpu']).toMatchObject({ bundled: true, library: 'bundled', loads: true });
    if (!providerLibraryPresent('cuda')) {
      expect(providers['cuda']).toMatchObject({ bundled: false, library: 'not installed', loads: false });
      expect(providers['cuda']?.detail).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (README "GPU set-up")');
    }
    expect(r.backbone).toMatchObject({
      ok: true,
      spec: 'builtin',
      device: 'auto',
      name: BUILTIN_NAME,
      patchSize: 8,
      inputWidth: 0,
      inputHeight: 0,
      hasKeys: true,
    });
    if (r.backbone.ok) {
      expect(r.backbone.dim).toBeGreaterThan(3);
      expect(r.backbone.providerReason).toMatch(/^auto: /);
    }
    expect(r.nats).toBeUndefined();

    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^ {2}ok {4}ffmpeg {7}\S+ at \S+ffmpeg \(from the PATH\), libx264 yes$/m);
    expect(human.stdout).toMatch(/^ {8}loads {3}cpu {7}a session starts and runs on cpu$/m);
    expect(human.stdout).toMatch(
      new RegExp(
        `^ {2}ok {4}backbone {5}${BUILTIN_NAME.replace(/[.]/g, '\\.')} \\(builtin\\): patch 8, dim \\d+, input any multiple of 8, keys yes$`,
        'm',
      ),
    );
    expect(human.stdout).toMatch(/^ {8}provider \w+: /m);
    expect(human.stdout).toMatch(/^ {2}info {2}gpu {10}/m);
    expect(human.stdout).toMatch(/^ {2}ok {4}learner {6}training runs its matrix products in WebAssembly SIMD$/m);
    expect(human.stdout.trimEnd().endsWith('everything stegostream needs is here')).toBe(true);
  });

  it('exit 1 when ffmpeg is missing (FFMPEG_PATH wrong) or the backbone breaks the contract', async () => {
    const bad = join(dir, 'bad.onnx');
    writeFileSync(bad, 'not a model');
    const r = await runWithEnv(['doctor', '--json', '--backbone', bad], { FFMPEG_PATH: join(dir, 'no-ffmpeg') });
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.ok).toBe(false);
    expect(rep.ffmpeg).toMatchObject({ ok: false, from: 'FFMPEG_PATH', path: null });
    expect(rep.backbone).toEqual({
      ok: false,
      spec: bad,
      device: 'auto',
      code: 'E_MODEL_NOT_ONNX',
      error: `"${bad}" is not an ONNX model ONNX Runtime can load. Export one with tools/export_dino.py or use --backbone builtin.`,
    });
    expect(rep.problems).toEqual([
      `ffmpeg: FFMPEG_PATH="${join(dir, 'no-ffmpeg')}" is not an executable file. Install it (Debian/Ubuntu: sudo apt-get install ffmpeg) or set FFMPEG_PATH.`,
      `backbone: "${bad}" is not an ONNX model ONNX Runtime can load. Export one with tools/export_dino.py or use --backbone builtin.`,
    ]);
  });

  it.skipIf(providerLibraryPresent('cuda'))('--device cuda on a machine without CUDA: the backbone check fails with the fix', async () => {
    const r = await runCli(['doctor', '--device', 'cuda']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^ {2}FAIL {2}backbone {5}builtin: Device "cuda" is not available: .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/m,
    );
  });

  describe.skipIf(natsServerMissing() !== undefined)('--nats', () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await NatsServer.start();
    });
    afterAll(async () => {
      await nats?.stop();
    });

    it('reports a reachable server, and exit 1 for one that is not there', async () => {
      const closed = `nats://127.0.0.1:${await freePort()}`;
      const [up, down] = await Promise.all([
        runCli(['doctor', '--json', '--nats', nats.url]),
        runCli(['doctor', '--json', '--nats', closed]),
      ]);
      expect(up.code).toBe(0);
      expect(json(up).nats).toMatchObject({ ok: true, url: nats.url, security: 'auth none, no tls' });
      expect(json(up).nats?.serverVersion).toMatch(/^\d+\.\d+/);
      expect(down.code).toBe(1);
      expect(json(down).nats).toEqual({
        ok: false,
        url: closed,
        security: 'auth none, no tls',
        error: `cannot connect to ${closed} (CONNECTION_REFUSED; timeout 3000 ms). Check the URL and that nats-server runs there.`,
      });
    });
  });
});
