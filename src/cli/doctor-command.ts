import { addNatsSecurityOptions, natsSecurityFromFlags, type NatsSecurityFlags } from './nats-security-options.js';
import { describeNatsSecurity, explainNatsError, natsConnectOptions, type NatsSecurity } from '../internal/nats-security.js';
import { Option, type Command } from 'commander';
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { connect } from 'nats';
import { Backbone } from '../backbone/backbone.js';
import { DEVICES, providerLibraryName, providerLibraryPresent, providerMissingReason, type Device } from '../backbone/execution-device.js';
import { DT, OnnxGraph } from '../internal/onnx-graph.js';
import { NatsSecurityError, StegoError } from '../errors.js';
import { simdAvailable } from '../learning/simd-gemm.js';
import { checkCachedModels, type ModelsReport } from '../models/check-models.js';
import { formatBytes } from '../models/pull-model.js';

/** How long a NATS server gets to accept the connection, ms. */
export const DOCTOR_NATS_TIMEOUT_MS = 3000;
/** How long one execution-provider probe (a child process) may take, ms. */
export const DOCTOR_PROVIDER_TIMEOUT_MS = 30_000;
/** How long ffmpeg -version / nvidia-smi may take, ms. */
const TOOL_TIMEOUT_MS = 10_000;

interface DoctorFlags extends NatsSecurityFlags {
  backbone: string;
  device: Device;
  nats?: string;
  json: boolean;
}

export interface ToolReport {
  readonly ok: boolean;
  /** The binary as configured: `$FFMPEG_PATH` or the bare name. */
  readonly command: string;
  /** Where it was found, when it was. */
  readonly path: string | null;
  readonly from: 'FFMPEG_PATH' | 'FFPROBE_PATH' | 'PATH';
  readonly version: string | null;
  readonly detail?: string;
}

export interface ProviderReport {
  readonly name: string;
  /** Ships inside the npm package (cpu, webgpu) or is a library downloaded at install (cuda, tensorrt). */
  readonly bundled: boolean;
  readonly library: 'bundled' | 'installed' | 'not installed';
  /** A session on this provider alone was created and run here (in a child process). */
  readonly loads: boolean;
  readonly detail: string;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly node: { readonly version: string; readonly platform: string; readonly arch: string; readonly cpus: number };
  readonly ffmpeg: ToolReport & { readonly libx264: boolean };
  readonly ffprobe: ToolReport;
  readonly onnxruntime: { readonly version: string; readonly providers: readonly ProviderReport[] };
  /** Whether the learner's matrix products run in the WebAssembly SIMD kernel (else plain JS, several times slower). */
  readonly learner: { readonly simd: boolean };
  readonly gpu: {
    readonly nvidiaSmi: string | null;
    readonly cudaVersion: string | null;
    readonly gpus: readonly { name: string; driver: string; memoryMiB: number }[];
  };
  readonly backbone:
    | ({ readonly ok: true; readonly spec: string; readonly device: Device; readonly loadMs: number } & Omit<Backbone['info'], 'source'>)
    | { readonly ok: false; readonly spec: string; readonly device: Device; readonly code: string | null; readonly error: string };
  /** Hub models in the cache: integrity and whether they run with the providers that load here. */
  readonly models: ModelsReport;
  readonly nats?: {
    readonly ok: boolean;
    readonly url: string;
    readonly serverVersion?: string;
    readonly rttMs?: number;
    /** What the check used, e.g. "auth creds, mutual tls" (never a secret). */
    readonly security: string;
    readonly error?: string;
  };
}

export function registerDoctor(program: Command): void {
  const cmd = program
    .command('doctor')
    .description('check this machine: ffmpeg, ONNX Runtime execution providers, GPU, the backbone contract, NATS')
    .option('--backbone <builtin|name|file.onnx>', 'backbone to load and check (a model name loads from the cache)', 'builtin')
    .addOption(new Option('--device <device>', 'execution provider to load the backbone on').choices(DEVICES).default('auto'))
    .option('--nats <url>', 'also check that this NATS server accepts a connection (e.g. nats://127.0.0.1:4222)')
    .option('--json', 'print the report as JSON on stdout', false);
  addNatsSecurityOptions(cmd).action(async (flags: DoctorFlags) => {
    const report = await runDoctor(flags);
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report));
    // Missing ffmpeg, a backbone that does not load, or an unreachable --nats server.
    if (!report.ok) process.exitCode = 1;
  });
}

/** Runs every check (independent ones at once); never throws for what it checks. */
export async function runDoctor(flags: Omit<DoctorFlags, 'json'>): Promise<DoctorReport> {
  const [ffmpeg, ffprobe, providers, backbone, nats] = await Promise.all([
    checkTool('ffmpeg', 'FFMPEG_PATH'),
    checkTool('ffprobe', 'FFPROBE_PATH'),
    checkProviders(),
    checkBackbone(flags.backbone, flags.device),
    flags.nats !== undefined ? checkNats(flags.nats, natsSecurityFromFlags(flags)) : Promise.resolve(undefined),
  ]);
  const libx264 = ffmpeg.ok && encoders(ffmpeg.command).includes('libx264');
  const models = await checkCachedModels(providers.filter((p) => p.loads && p.name !== 'cpu').map((p) => p.name));
  const problems: string[] = [];
  if (!ffmpeg.ok) problems.push(`ffmpeg: ${ffmpeg.detail}`);
  if (ffmpeg.ok && !libx264) problems.push('ffmpeg has no libx264 encoder: overlay videos (--out) cannot be written');
  if (!ffprobe.ok) problems.push(`ffprobe: ${ffprobe.detail}`);
  if (!backbone.ok) problems.push(`backbone: ${backbone.error}`);
  if (nats && !nats.ok) problems.push(`nats: ${nats.error}`);
  for (const m of models.models) if (m.integrity === 'damaged') problems.push(`model ${m.name} (${m.variant}): ${m.detail}`);
  return {
    ok: problems.length === 0,
    problems,
    node: { version: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length },
    ffmpeg: { ...ffmpeg, libx264 },
    ffprobe,
    onnxruntime: { version: ort.env.versions.node ?? 'unknown', providers },
    learner: { simd: simdAvailable },
    gpu: checkGpu(),
    backbone,
    models,
    ...(nats ? { nats } : {}),
  };
}

/** The first executable called `name` on the PATH, or a path as given. */
function which(command: string): string | null {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (command.includes('/') || isAbsolute(command)) return executable(command) ? resolve(command) : null;
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, command))) return join(dir, command);
  }
  return null;
}

async function checkTool(name: 'ffmpeg' | 'ffprobe', envVar: 'FFMPEG_PATH' | 'FFPROBE_PATH'): Promise<ToolReport> {
  const configured = process.env[envVar];
  const command = configured !== undefined && configured !== '' ? configured : name;
  const from = command === name ? 'PATH' : envVar;
  const path = which(command);
  const fix = `Install it (Debian/Ubuntu: sudo apt-get install ffmpeg) or set ${envVar}.`;
  if (path === null) {
    const where = from === 'PATH' ? 'not found on the PATH' : `${envVar}="${command}" is not an executable file`;
    return { ok: false, command, path, from, version: null, detail: `${where}. ${fix}` };
  }
  const r = spawnSync(path, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  const first = (r.stdout ?? '').split('\n')[0] ?? '';
  const version = /version (\S+)/.exec(first)?.[1] ?? null;
  if (r.error || r.status !== 0 || version === null) {
    return {
      ok: false,
      command,
      path,
      from,
      version,
      detail: `${path} -version failed (${r.error?.message ?? r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`}). ${fix}`,
    };
  }
  return { ok: true, command, path, from, version };
}

function encoders(ffmpeg: string): string {
  const r = spawnSync(ffmpeg, ['-hide_banner', '-encoders'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  return r.stdout ?? '';
}

/**
 * Every provider this onnxruntime-node build lists, and whether a session on it alone starts and
 * runs here. Each probe runs in a child process: a GPU library that is missing pieces makes the
 * native loader print to stderr (or worse), which must not reach the report or this process.
 */
async function checkProviders(): Promise<ProviderReport[]> {
  const ortMain = createRequire(import.meta.url).resolve('onnxruntime-node');
  const g = new OnnxGraph('doctor_probe');
  g.output('y', DT.FLOAT, [1, 4]);
  g.op1('Relu', [g.input('x', DT.FLOAT, [1, 4])], {}, 'y');
  const model = Buffer.from(g.toBytes({})).toString('base64');
  return Promise.all(
    ort.listSupportedBackends().map(async ({ name, bundled }): Promise<ProviderReport> => {
      const library = bundled ? 'bundled' : providerLibraryPresent(name) ? 'installed' : 'not installed';
      const missing = bundled ? undefined : providerMissingReason(name);
      if (missing !== undefined) return { name, bundled, library, loads: false, detail: missing };
      const probe = await probeProvider(ortMain, name, model);
      return { name, bundled, library, loads: probe.ok, detail: probe.ok ? `a session starts and runs on ${name}` : probe.error };
    }),
  );
}

const PROBE_SCRIPT = `
const ort = require(process.argv[1]);
const bytes = Buffer.from(process.env.STEGOSTREAM_PROBE_MODEL, 'base64');
ort.InferenceSession.create(bytes, { executionProviders: [process.argv[2]] })
  .then((s) => s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4]) }))
  .then(() => process.exit(0), (e) => { process.stdout.write(String(e && e.message)); process.exit(3); });
`;

function probeProvider(ortMain: string, provider: string, model: string): Promise<{ ok: boolean; error: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['-e', PROBE_SCRIPT, ortMain, provider], {
      env: { ...process.env, STEGOSTREAM_PROBE_MODEL: model },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: DOCTOR_PROVIDER_TIMEOUT_MS,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => done({ ok: false, error: e.message }));
    child.on('close', (code, signal) => {
      if (code === 0) return done({ ok: true, error: '' });
      const why = out.trim() || err.trim().split('\n').filter(Boolean).pop() || (signal ? `killed by ${signal}` : `exit ${code}`);
      // ORT prefixes some messages with its source location and the failed check: keep the words.
      done({ ok: false, error: `does not start here: ${why.split('\n')[0]?.replace(/^\/onnxruntime_src\/.*? was false\.\s*/, '')}` });
    });
  });
}

function checkGpu(): DoctorReport['gpu'] {
  const smi = which('nvidia-smi');
  if (smi === null) return { nvidiaSmi: null, cudaVersion: null, gpus: [] };
  const q = spawnSync(smi, ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader,nounits'], {
    encoding: 'utf8',
    timeout: TOOL_TIMEOUT_MS,
  });
  const gpus = (q.status === 0 ? q.stdout : '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [name = '', driver = '', mem = '0'] = l.split(',').map((s) => s.trim());
      return { name, driver, memoryMiB: Number(mem) };
    });
  const plain = spawnSync(smi, [], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  const cudaVersion = /CUDA Version:\s*([\d.]+)/.exec(plain.stdout ?? '')?.[1] ?? null;
  return { nvidiaSmi: smi, cudaVersion, gpus };
}

async function checkBackbone(spec: string, device: Device): Promise<DoctorReport['backbone']> {
  const t0 = performance.now();
  try {
    const b = await Backbone.load(spec, { device });
    const { source: _source, ...info } = b.info;
    await b.close();
    return { ok: true, spec, device, loadMs: Math.round(performance.now() - t0), ...info };
  } catch (err) {
    const e = err as Error;
    return { ok: false, spec, device, code: err instanceof StegoError ? err.code : null, error: e.message };
  }
}

async function checkNats(url: string, sec: NatsSecurity | undefined): Promise<NonNullable<DoctorReport['nats']>> {
  const name = 'stegostream-doctor';
  let secured;
  try {
    secured = natsConnectOptions(name, url.split(','), sec);
  } catch (err) {
    return { ok: false, url, security: 'unusable settings', error: (err as Error).message };
  }
  const security = describeNatsSecurity(secured.security);
  try {
    const nc = await connect({ ...secured.options, servers: secured.servers, timeout: DOCTOR_NATS_TIMEOUT_MS, reconnect: false, name });
    try {
      const rttMs = await nc.rtt();
      return {
        ok: true,
        url,
        security,
        rttMs: Math.round(rttMs * 10) / 10,
        ...(nc.info?.version ? { serverVersion: nc.info.version } : {}),
      };
    } finally {
      await nc.close();
    }
  } catch (err) {
    const explained = explainNatsError(name, err, secured.security);
    return {
      ok: false,
      url,
      security,
      error:
        explained instanceof NatsSecurityError
          ? explained.message
          : `cannot connect to ${url} (${(err as Error).message}; timeout ${DOCTOR_NATS_TIMEOUT_MS} ms). Check the URL and that nats-server runs there.`,
    };
  }
}

/** The report for people: one line per check, problems last. */
export function formatDoctor(r: DoctorReport): string {
  const lines: string[] = ['stegostream doctor', ''];
  const row = (status: string, what: string, text: string): void => {
    lines.push(`  ${status.padEnd(5)} ${what.padEnd(12)} ${text}`);
  };
  row('ok', 'node', `${r.node.version} (${r.node.platform} ${r.node.arch}, ${r.node.cpus} cpus)`);
  for (const [what, t] of [
    ['ffmpeg', r.ffmpeg],
    ['ffprobe', r.ffprobe],
  ] as const) {
    const where = t.from === 'PATH' ? 'from the PATH' : `from ${t.from}`;
    const extra = what === 'ffmpeg' && t.ok ? `, libx264 ${r.ffmpeg.libx264 ? 'yes' : 'NO'}` : '';
    row(t.ok ? 'ok' : 'FAIL', what, t.ok ? `${t.version} at ${t.path} (${where})${extra}` : (t.detail ?? ''));
  }
  row('ok', 'onnxruntime', `onnxruntime-node ${r.onnxruntime.version}; execution providers this build lists:`);
  for (const p of r.onnxruntime.providers) {
    const lib = p.library === 'installed' ? `(${providerLibraryName(p.name)} installed) ` : '';
    lines.push(`        ${p.loads ? 'loads  ' : 'no     '} ${p.name.padEnd(9)} ${lib}${p.detail}`);
  }
  row(
    r.learner.simd ? 'ok' : 'warn',
    'learner',
    r.learner.simd
      ? 'training runs its matrix products in WebAssembly SIMD'
      : 'no WebAssembly SIMD in this Node: training runs in plain JS, several times slower (use Node 20 or later)',
  );
  const g = r.gpu;
  row(
    'info',
    'gpu',
    g.nvidiaSmi === null
      ? 'no NVIDIA GPU found (nvidia-smi is not on the PATH)'
      : g.gpus.length === 0
        ? `${g.nvidiaSmi} lists no GPU`
        : `${g.gpus.map((x) => `${x.name} (${x.memoryMiB} MiB, driver ${x.driver})`).join(', ')}${g.cudaVersion ? `, driver supports CUDA ${g.cudaVersion}` : ''}`,
  );
  const b = r.backbone;
  if (b.ok) {
    const size = b.inputWidth > 0 ? `${b.inputWidth}x${b.inputHeight}` : `any multiple of ${b.patchSize}`;
    row(
      'ok',
      'backbone',
      `${b.name} (${b.spec}): patch ${b.patchSize}, dim ${b.dim}, input ${size}, keys ${b.hasKeys ? 'yes' : 'no (LOST uses the patch tokens, README "Models")'}`,
    );
    lines.push(`        provider ${b.provider}: ${b.providerReason}`);
  } else {
    row('FAIL', 'backbone', `${b.spec}: ${b.error}`);
  }
  const m = r.models;
  row('info', 'models', m.models.length === 0 ? `none cached in ${m.cache} (stegostream models pull NAME)` : `cached in ${m.cache}:`);
  for (const x of m.models) {
    lines.push(
      `        ${(x.integrity === 'damaged' ? 'DAMAGED' : x.runs ? 'runs' : 'no').padEnd(7)} ${`${x.name} ${x.variant}`.padEnd(26)} ${formatBytes(x.bytes).padEnd(9)} ${x.detail}`,
    );
  }
  if (r.nats) {
    const n = r.nats;
    row(
      n.ok ? 'ok' : 'FAIL',
      'nats',
      n.ok
        ? `${n.url} reachable (${n.security})${n.serverVersion ? `, nats-server ${n.serverVersion}` : ''}, round trip ${n.rttMs} ms`
        : `${n.error ?? ''} (${n.security})`,
    );
  }
  lines.push('');
  lines.push(
    r.ok ? 'everything stegostream needs is here' : `${r.problems.length} problem(s):\n${r.problems.map((p) => `  - ${p}`).join('\n')}`,
  );
  return lines.join('\n') + '\n';
}
