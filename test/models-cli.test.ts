import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CLI, countFrames, lavfiVideo, tempDir, type CliResult } from './helpers/cli.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';

/**
 * `stegostream models` and `--backbone NAME` against a loopback stand-in for the hub
 * (test/helpers/hub-server.ts) serving small random-weight ViTs in the transformers.js layout,
 * written by test/helpers/export_hub_model.py with torch. Everything runs the built CLI as a user
 * would, with HF_ENDPOINT pointing at the local server and STEGOSTREAM_CACHE at a fresh folder.
 */

const PYTHON = '/usr/bin/python3';
const HUB_EXPORT = resolve(dirname(fileURLToPath(import.meta.url)), 'helpers/export_hub_model.py');

function pythonProblem(): string | undefined {
  const res = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (res.error) return `${PYTHON} cannot be run (${res.error.message})`;
  if (res.status !== 0) return `${PYTHON} cannot import torch, onnx; install python3-torch and python3-onnx`;
  return undefined;
}
const problem = pythonProblem();

function exportHub(out: string, args: readonly string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [HUB_EXPORT, '--out', out, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`export_hub_model.py failed (${code}): ${err}`))));
  });
}

/** The CLI with extra environment (the shared helper passes the test's own). */
function cli(args: readonly string[], env: Record<string, string>, cwd?: string): Promise<CliResult> {
  const clean = { ...process.env };
  for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'STEGOSTREAM_OFFLINE', 'HF_HUB_OFFLINE', 'HF_TOKEN'])
    delete clean[k];
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.on('close', (code, signal) => done({ code, signal, stdout, stderr })));
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(problem !== undefined)(`stegostream models against a local hub${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let dir = '';
  let hub: HubServer;
  let cache = '';
  let env: Record<string, string> = {};
  let n = 0;

  beforeAll(async () => {
    dir = await tempDir('models-cli-');
    const repos = join(dir, 'hub');
    await Promise.all([
      exportHub(join(repos, 'Xenova/dino-vits8'), ['--family', 'dino', '--seed', '1']),
      exportHub(join(repos, 'Xenova/dinov2-small'), ['--family', 'dinov2', '--registers', '4', '--seed', '2']),
    ]);
    await cp(join(repos, 'Xenova/dino-vits8'), join(repos, 'Xenova/dino-vits16'), { recursive: true });
    await cp(join(repos, 'Xenova/dino-vits8'), join(repos, 'private/dino'), { recursive: true });
    hub = await startHubServer(repos);
    lavfiVideo(join(dir, 'dive.mp4'), { size: '160x120', rate: 10, seconds: 1 });
  }, 120_000);

  afterAll(async () => {
    await hub?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    cache = join(dir, `cache-${++n}`);
    env = { STEGOSTREAM_CACHE: cache, HF_ENDPOINT: hub.url };
    hub.requests.length = 0;
    hub.faults.cutOnce.clear();
    hub.faults.corruptOnce.clear();
    hub.faults.hang = false;
    hub.faults.tokenFor.clear();
  });

  const modelFile = (): string => join(cache, 'Xenova/dino-vits8/onnx/model.onnx');
  const onnxGets = (): number => hub.requests.filter((r) => r.url.startsWith('/cdn/')).length;

  it('pull downloads config, preprocessor and the fp32 ONNX file, verifies the SHA-256 and keeps it beside the file', async () => {
    const r = await cli(['models', 'pull', 'dino-vits8'], env);
    expect(r.stderr).toContain('onnx/model.onnx:');
    expect(r.stderr).toContain('SHA-256 verified');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`dino-vits8 (fp32) is cached: ${modelFile()}`);
    const served = hub.file('Xenova/dino-vits8', 'onnx/model.onnx');
    expect(sha256(await readFile(modelFile()))).toBe(sha256(served));
    expect((await readFile(modelFile() + '.sha256', 'utf8')).trim()).toBe(sha256(served));
    expect(existsSync(join(cache, 'Xenova/dino-vits8/config.json'))).toBe(true);
    expect(existsSync(join(cache, 'Xenova/dino-vits8/preprocessor_config.json'))).toBe(true);
    expect(existsSync(modelFile() + '.part')).toBe(false);
    // The hub was asked for exactly these paths, the ONNX file through its CDN redirect.
    expect(hub.requests.map((q) => q.url)).toEqual([
      '/Xenova/dino-vits8/resolve/main/config.json',
      '/Xenova/dino-vits8/resolve/main/preprocessor_config.json',
      '/Xenova/dino-vits8/resolve/main/onnx/model.onnx',
      `/cdn/${sha256(served)}`,
    ]);

    const list = await cli(['models', 'list', '--json'], env);
    const rows = (JSON.parse(list.stdout) as { models: { name: string; cached: { variant: string; bytes: number }[] }[] }).models;
    expect(rows.find((m) => m.name === 'dino-vits8')?.cached).toEqual([{ variant: 'fp32', bytes: served.length, digest: true }]);
    expect(rows.find((m) => m.name === 'dino-vits16')?.cached).toEqual([]);

    const again = await cli(['models', 'pull', 'dino-vits8'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('was already cached');
    expect(onnxGets()).toBe(1);
  });

  it('--variant picks the file: fp16 is model_fp16.onnx, int8 model_quantized.onnx; rm removes one variant or the model', async () => {
    expect((await cli(['models', 'pull', 'dino-vits8', '--variant', 'fp16'], env)).code).toBe(0);
    expect((await cli(['models', 'pull', 'dino-vits8', '--variant', 'int8'], env)).code).toBe(0);
    expect(existsSync(join(cache, 'Xenova/dino-vits8/onnx/model_fp16.onnx'))).toBe(true);
    expect(existsSync(join(cache, 'Xenova/dino-vits8/onnx/model_quantized.onnx'))).toBe(true);
    expect(existsSync(modelFile())).toBe(false);
    const rmOne = await cli(['models', 'rm', 'dino-vits8', '--variant', 'fp16'], env);
    expect(rmOne.code).toBe(0);
    expect(existsSync(join(cache, 'Xenova/dino-vits8/onnx/model_fp16.onnx'))).toBe(false);
    expect(existsSync(join(cache, 'Xenova/dino-vits8/onnx/model_quantized.onnx'))).toBe(true);
    expect((await cli(['models', 'rm', 'dino-vits8'], env)).stdout).toContain('removed dino-vits8');
    expect(existsSync(join(cache, 'Xenova/dino-vits8'))).toBe(false);
  });

  it('a download cut half-way resumes with an HTTP Range request and still verifies', async () => {
    hub.faults.cutOnce.add('onnx/model.onnx');
    const r = await cli(['models', 'pull', 'dino-vits8'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/onnx\/model\.onnx: [\d.]+ kB, resumed, SHA-256 verified/);
    const cdn = hub.requests.filter((q) => q.url.startsWith('/cdn/'));
    expect(cdn).toHaveLength(2);
    expect(cdn[0]?.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(cdn[1]?.range ?? '')?.[1]);
    const size = hub.file('Xenova/dino-vits8', 'onnx/model.onnx').length;
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThan(size);
    expect(sha256(await readFile(modelFile()))).toBe(sha256(hub.file('Xenova/dino-vits8', 'onnx/model.onnx')));
  });

  it('a download that does not match the SHA-256 the hub sent is refused and fetched again', async () => {
    hub.faults.corruptOnce.add('onnx/model.onnx');
    const r = await cli(['models', 'pull', 'dino-vits8'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(onnxGets()).toBe(2);
    expect(sha256(await readFile(modelFile()))).toBe(sha256(hub.file('Xenova/dino-vits8', 'onnx/model.onnx')));
  });

  it('a cached file damaged on disk is refused on load and fetched again by pull', async () => {
    expect((await cli(['models', 'pull', 'dino-vits8'], env)).code).toBe(0);
    const bytes = await readFile(modelFile());
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x01;
    await writeFile(modelFile(), bytes);
    const run = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'dino-vits8', '--no-progress'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`stegostream: "${modelFile()}" is damaged: its SHA-256 is ${sha256(bytes)}, expected `);
    expect(run.stderr).toContain('run stegostream models pull with the same name (and --variant) to fetch it again. [E_MODEL_INTEGRITY]');
    const doctor = await cli(['doctor', '--json'], env);
    const models = (JSON.parse(doctor.stdout) as { models: { models: { name: string; integrity: string }[] } }).models.models;
    expect(models).toEqual([expect.objectContaining({ name: 'dino-vits8', integrity: 'damaged' })]);
    const pull = await cli(['models', 'pull', 'dino-vits8'], env);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).toContain('fetching it again');
    expect(sha256(await readFile(modelFile()))).toBe(sha256(hub.file('Xenova/dino-vits8', 'onnx/model.onnx')));
  });

  it('404, a server that never answers, and offline mode give clear errors', async () => {
    const missing = await cli(['models', 'pull', 'hub:nobody/nothing'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `stegostream: Cannot download ${hub.url}/nobody/nothing/resolve/main/config.json: the server answered 404 Not Found. Check the model name (stegostream models list)`,
    );
    expect(missing.stderr).toContain('[E_MODEL_DOWNLOAD]');

    hub.faults.hang = true;
    const hung = await cli(['models', 'pull', 'dino-vits8', '--timeout', '1'], env);
    expect(hung.code).toBe(1);
    expect(hung.stderr).toContain(
      'config.json: the server did not answer within 1 s (3 attempts). Check the network (HTTPS_PROXY is honoured)',
    );
    hub.faults.hang = false;

    const offline = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'dino-vits8'], { ...env, STEGOSTREAM_OFFLINE: '1' });
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain(
      `stegostream: Model "dino-vits8" is not in the cache and offline mode is on (STEGOSTREAM_OFFLINE or HF_HUB_OFFLINE). To install it by hand, download config.json, preprocessor_config.json, onnx/model.onnx from https://huggingface.co/Xenova/dino-vits8 on a machine with internet and copy them into ${cache}/Xenova/dino-vits8/ keeping their paths`,
    );
    expect(offline.stderr).toContain('[E_MODEL_OFFLINE]');
    expect(hub.requests.filter((q) => !q.url.includes('/resolve/main/config.json'))).toEqual([]);
  }, 60_000);

  it('HF_TOKEN is sent as a bearer token; without it a gated repository says to set it', async () => {
    hub.faults.tokenFor.set('private/dino', 'secret-1');
    const denied = await cli(['models', 'pull', 'hub:private/dino'], env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('the server answered 401 (not authorised). For a gated or private repository set HF_TOKEN');
    const ok = await cli(['models', 'pull', 'hub:private/dino'], { ...env, HF_TOKEN: 'secret-1' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(hub.requests.filter((q) => q.url.startsWith('/private/')).at(-1)?.authorization).toBe('Bearer secret-1');
  });

  it('HTTPS_PROXY / HTTP_PROXY are honoured: the downloads tunnel through the proxy', async () => {
    // undici's proxy agent tunnels every request with CONNECT, http:// targets included.
    const tunnels: string[] = [];
    const proxy: Server = createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host ?? '', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    try {
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const r = await cli(['models', 'pull', 'dino-vits8', '--timeout', '10'], { ...env, HTTP_PROXY: url, HTTPS_PROXY: url });
      expect(r.code, r.stderr).toBe(0);
      expect(tunnels.length).toBeGreaterThan(0);
      expect(new Set(tunnels)).toEqual(new Set([new URL(hub.url).host]));
      expect(hub.requests).toHaveLength(4);
    } finally {
      proxy.closeAllConnections();
      await new Promise((ok) => proxy.close(ok));
    }
  }, 60_000);

  it("the README's two commands work as written: models pull dino-vits8, then process dive.mp4 --backbone dino-vits8 --out seg.mp4", async () => {
    const work = join(dir, `readme-${n}`);
    await mkdir(work);
    await cp(join(dir, 'dive.mp4'), join(work, 'dive.mp4'));
    const pull = await cli(['models', 'pull', 'dino-vits8'], env, work);
    expect(pull.code, pull.stderr).toBe(0);
    const run = await cli(['process', 'dive.mp4', '--backbone', 'dino-vits8', '--out', 'seg.mp4'], env, work);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('backbone Xenova/dino-vits8 (fp32)');
    expect(countFrames(join(work, 'seg.mp4'))).toBe(10);
  }, 120_000);

  it('--backbone NAME not cached is pulled first (DINOv2 with registers at any multiple of its patch)', async () => {
    const out = join(dir, `v2-${n}.mp4`);
    const run = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'dinov2-small', '--width', '96', '--out', out, '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('dinov2-small (fp32, about 88.0 MB) is not cached: pulling it into');
    expect(existsSync(join(cache, 'Xenova/dinov2-small/onnx/model.onnx.sha256'))).toBe(true);
    expect(JSON.parse(run.stdout).backbone).toBe('Xenova/dinov2-small (fp32)');
    expect(countFrames(out)).toBe(10);
  }, 120_000);

  it("serve pulls a pipeline file's model name before it starts, then runs on it", async () => {
    const file = join(dir, `serve-${n}.yaml`);
    await writeFile(
      file,
      'name: hub\nservice: { port: 0 }\nsources:\n  - { use: scene, name: reef, with: { fps: 15 } }\n' +
        'model: { backbone: dino-vits16, device: cpu }\nsinks:\n  - use: websocket\n',
    );
    const clean = { ...process.env };
    delete clean['HTTP_PROXY'];
    delete clean['HTTPS_PROXY'];
    const child = spawn(process.execPath, [CLI, 'serve', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((done) => child.on('close', done));
    try {
      await new Promise<void>((ready, fail) => {
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('running; viewer at')) ready();
        });
        child.on('close', (code) => fail(new Error(`serve exited ${code} before it ran: ${stderr}`)));
      });
      expect(stderr).toContain('dino-vits16 (fp32, about 87.0 MB) is not cached: pulling it into');
      expect(existsSync(join(cache, 'Xenova/dino-vits16/onnx/model.onnx.sha256'))).toBe(true);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 120_000);

  it('--variant with a backbone that is not a hub model, and an unknown name, are refused before any work', async () => {
    const r = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'builtin', '--variant', 'fp16'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'stegostream: Expected a hub model name in --backbone (e.g. dino-vits8) for --variant but received "builtin" of type string [E_BAD_OPTION]\n',
    );
    const unknown = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'hub:../etc'], env);
    expect(unknown.stderr).toContain('stegostream: Unknown model "hub:../etc": use one of dino-vits8, dino-vits16,');
    expect(hub.requests).toEqual([]);
  });

  it('a working size a fixed position-embedding table cannot take is refused, naming the size it can', async () => {
    expect((await cli(['models', 'pull', 'dino-vits8'], env)).code).toBe(0);
    const r = await cli(['process', join(dir, 'dive.mp4'), '--backbone', 'dino-vits8', '--width', '320'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'stegostream: Expected the size dino-vits8 can take: 224x224 only (its position embeddings are a fixed 28x28 grid of 8 px patches; drop --width/--height, or use a DINOv2 model such as dinov2-small for other sizes) for --width but received "320x224" of type string [E_BAD_OPTION]',
    );
  });

  it('doctor lists cached models with their integrity and whether they run here', async () => {
    expect((await cli(['models', 'pull', 'dino-vits8'], env)).code).toBe(0);
    const r = await cli(['doctor', '--backbone', 'dino-vits8'], env);
    expect(r.stdout).toMatch(
      /backbone +Xenova\/dino-vits8 \(fp32\) \(dino-vits8\): patch 8, dim 32, input 224x224, keys no \(LOST uses the patch tokens/,
    );
    expect(r.stdout).toMatch(/runs +dino-vits8 fp32 .* SHA-256 ok; runs on cpu/);
  }, 60_000);
});
