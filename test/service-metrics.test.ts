/**
 * `/metrics` of a real service (`runService` with a scene and a file source, the real backbone and
 * learner workers, a real WebSocket client): the per-class shares agree with the stats clients
 * get, a finished file's source goes down, training rounds are counted, build info names the
 * version and backbone; and the whole exposition keeps Prometheus' naming rules (what
 * `promtool check metrics` checks, and promtool itself when it is installed).
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import { PipelineMetrics } from '../src/service/pipeline-metrics.js';
import { BUILTIN_NAME } from '../src/backbone/builtin-backbone.js';
import type { ServerMessage } from '../src/sinks/ws-protocol.js';
import type { FrameStats } from '../src/types.js';
import { lavfiVideo, tempDir } from './helpers/cli.js';

const silent = pino({ level: 'silent' });
const WAIT_MS = 30_000;
const CLIP_FRAMES = 15;
const HAS_PROMTOOL = spawnSync('promtool', ['--version']).error === undefined;

type Stats = FrameStats & { readonly type: 'stats' };

/** One sample line of the exposition. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family: its HELP and TYPE lines and its samples. */
interface Family {
  help?: string;
  type?: string;
  readonly samples: Sample[];
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseSample(line: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
  if (!m) throw new Error(`not a sample line: ${line}`);
  const labels: Record<string, string> = {};
  for (const [, k, v] of (m[2] ?? '').matchAll(LABEL)) labels[k as string] = v as string;
  return { name: m[1] as string, labels, value: Number(m[3]) };
}

/** The family a sample belongs to: histogram samples carry `_bucket`, `_sum`, `_count` suffixes. */
function familyOf(name: string, families: ReadonlyMap<string, Family>): string {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && families.get(base)?.type === 'histogram' ? base : name;
}

function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = family(meta[2] as string);
      if (meta[1] === 'HELP') f.help = meta[3] ?? '';
      else f.type = meta[3] ?? '';
      continue;
    }
    const s = parseSample(line);
    family(familyOf(s.name, families)).samples.push(s);
  }
  return families;
}

/**
 * The naming rules `promtool check metrics` applies (client_golang's promlint) that a registry
 * can break: HELP and TYPE on every family, `_total` on counters and only on them, histogram
 * suffixes only on histograms, snake_case names without colons, and no series twice.
 */
function lintExposition(text: string): string[] {
  const problems: string[] = [];
  const families = parseExposition(text);
  const seen = new Set<string>();
  for (const [name, f] of families) {
    if (!f.help) problems.push(`${name}: no help text`);
    if (!f.type) problems.push(`${name}: no TYPE`);
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) problems.push(`${name}: not snake_case (or has a colon)`);
    if (f.type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter without the _total suffix`);
    if (f.type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: ${f.type} with the _total suffix`);
    if (f.type !== 'histogram' && f.type !== 'summary' && /_(bucket|count|sum)$/.test(name))
      problems.push(`${name}: ${f.type} named like a histogram series`);
    for (const s of f.samples) {
      const key = `${s.name}{${Object.entries(s.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}}`;
      if (seen.has(key)) problems.push(`${key}: duplicate series`);
      seen.add(key);
    }
  }
  return problems;
}

function value(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const f = parseExposition(text).get(name);
  const want = Object.entries(labels);
  return f?.samples.find((s) => s.name === name && want.every(([k, v]) => s.labels[k] === v))?.value;
}

const scrape = async (s: RunningService): Promise<string> => (await fetch(`${s.url}/metrics`)).text();

/** A WebSocket client that keeps every JSON message; `until` re-checks its condition per message. */
class Client {
  readonly json: ServerMessage[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) this.json.push(JSON.parse(data.toString('utf8')) as ServerMessage);
      for (const w of [...this.waiters]) w();
    });
  }

  static async open(url: string): Promise<Client> {
    const c = new Client(new WebSocket(`${url.replace(/^http/, 'ws')}/ws`));
    await c.until('hello', () => c.json.some((m) => m.type === 'hello'));
    c.ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'events'] }));
    await c.until('subscribed', () => c.json.some((m) => m.type === 'subscribed'));
    return c;
  }

  stats(stream: string): Stats[] {
    return this.json.filter((m): m is Stats => m.type === 'stats' && m.stream === stream);
  }

  stopped(stream: string): boolean {
    return this.json.some(
      (m) => m.type === 'event' && m.event.type === 'source-state' && m.event.stream === stream && m.event.state === 'stopped',
    );
  }

  until(what: string, pred: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; ${this.json.length} messages`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

describe('service metrics', () => {
  /** The last exposition of the service test, for promtool. */
  let exposition = '';
  const services: RunningService[] = [];
  const clients: Client[] = [];
  afterEach(async () => {
    clients.splice(0).forEach((c) => c.ws.terminate());
    await Promise.all(services.splice(0).map((s) => s.close()));
  });

  it('class shares match the stats clients get, a finished file goes down, rounds are counted, build info; names keep the rules', async () => {
    const dir = await tempDir();
    const video = join(dir, 'clip.mp4');
    lavfiVideo(video, { size: '320x180', rate: 15, seconds: CLIP_FRAMES / 15 });
    const s = await runService(
      parsePipeline(
        `
name: metrics
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
  - { use: file, name: clip, with: { path: "${video}" } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, names: [water, sand, rock, coral], trainEvery: 8, trainSteps: 10, maxDispersionRatio: 0, cpuShare: 1 }
sinks:
  - use: websocket
`,
        'test',
        {},
      ),
      { logger: silent, port: 0 },
    );
    services.push(s);

    // Every series exists from the start: the rounds at 0 per result, each stream's source state.
    const early = await scrape(s);
    expect(value(early, 'stegostream_train_rounds_total', { result: 'rejected' })).toBeGreaterThanOrEqual(0);
    expect(value(early, 'stegostream_source_up', { stream: 'reef' })).toBeDefined();

    const c = await Client.open(s.url);
    clients.push(c);
    await c.until('the file to end', () => c.stopped('clip'));
    await c.until('the last frame of the file', () => c.stats('clip').some((x) => x.seq === CLIP_FRAMES - 1));

    // The file has ended: its source is down, the scene's is up.
    await expect.poll(async () => value(await scrape(s), 'stegostream_source_up', { stream: 'clip' }), { timeout: WAIT_MS }).toBe(0);
    const text = await scrape(s);
    expect(value(text, 'stegostream_source_up', { stream: 'reef' })).toBe(1);

    // The file's last frame is its last published one: its shares are the ones the client got for it.
    const last = c.stats('clip').at(-1)!;
    expect(last.seq).toBe(CLIP_FRAMES - 1);
    expect(last.classes.map((k) => k.name)).toEqual(['water', 'sand', 'rock', 'coral']);
    for (const k of last.classes) {
      expect(value(text, 'stegostream_class_fraction', { stream: 'clip', class: k.name })).toBeCloseTo(k.fraction, 9);
    }
    // Shares of any frame sum to 1, and the scene's frame differs from the test card's.
    const shares = (stream: string): number[] =>
      (parseExposition(text).get('stegostream_class_fraction')?.samples ?? [])
        .filter((x) => x.labels.stream === stream)
        .map((x) => x.value);
    expect(shares('reef')).toHaveLength(4);
    expect(shares('reef').reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(shares('clip').reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);

    // Rounds every 8 frames: the first fit and later ones are counted as kept (the guard is off
    // here, maxDispersionRatio 0, so no round is turned away at random).
    await expect
      .poll(
        async () => {
          const t = await scrape(s);
          return (
            (value(t, 'stegostream_train_rounds_total', { result: 'kept' }) ?? 0) +
            (value(t, 'stegostream_train_rounds_total', { result: 'rejected' }) ?? 0)
          );
        },
        // Background rounds share the cores with inference: on a busy machine each takes seconds.
        { timeout: 4 * WAIT_MS },
      )
      .toBeGreaterThanOrEqual(3);
    const later = await scrape(s);
    expect(value(later, 'stegostream_train_rounds_total', { result: 'kept' })).toBeGreaterThanOrEqual(2);
    expect(value(later, 'stegostream_head_version')).toBeGreaterThanOrEqual(2);

    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(value(later, 'stegostream_build_info', { version, backbone: BUILTIN_NAME })).toBe(1);

    // Node's process metrics under their standard names, as stock dashboards query them.
    const families = parseExposition(later);
    expect(families.get('process_cpu_seconds_total')?.type).toBe('counter');
    expect(families.get('process_resident_memory_bytes')?.type).toBe('gauge');
    expect(families.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(families.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge');
    expect([...families.keys()].filter((n) => n.startsWith('stegostream_process_'))).toEqual([]);

    // The naming rules hold for the whole exposition (histograms with samples, labelled series and all).
    expect(lintExposition(later)).toEqual([]);
    exposition = later;
  }, 300_000);

  it.skipIf(!HAS_PROMTOOL)(
    'promtool check metrics passes on that exposition (skipped when promtool, from the prometheus package, is missing)',
    () => {
      expect(exposition, 'the service test above produced no exposition').not.toBe('');
      const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
      expect(`${`${r.stdout}${r.stderr}`.trim()} (exit ${String(r.status)})`.trim()).toBe('(exit 0)');
    },
  );

  it('counts rounds whose head the dispersion check turns away as rejected', async () => {
    // maxDispersionRatio 1: a trained head must fit the features as well as k-means does, which
    // ten Adam steps hardly ever reach, so nearly every round after the first fit is rejected.
    const s = await runService(
      parsePipeline(
        `
name: rejecting
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 8, trainSteps: 10, maxDispersionRatio: 1, cpuShare: 1 }
sinks:
  - use: websocket
`,
        'test',
        {},
      ),
      { logger: silent, port: 0 },
    );
    services.push(s);
    await expect
      // Background rounds keep to a small CPU share: on a busy machine one takes many seconds.
      .poll(async () => value(await scrape(s), 'stegostream_train_rounds_total', { result: 'rejected' }), { timeout: 4 * WAIT_MS })
      .toBeGreaterThanOrEqual(1);
    // Only kept rounds make head versions (the first fit is version 1); the swap comes at the next batch.
    await expect
      .poll(
        async () => {
          const t = await scrape(s);
          return value(t, 'stegostream_head_version') === value(t, 'stegostream_train_rounds_total', { result: 'kept' });
        },
        { timeout: WAIT_MS },
      )
      .toBe(true);
  }, 300_000);

  it('a renamed class moves its share to the new name; two classes of one name add up', async () => {
    const registry = new Registry();
    const m = new PipelineMetrics(registry);
    m.setClassFractions('reef', [
      { name: 'water', fraction: 0.5 },
      { name: 'sand', fraction: 0.3 },
      { name: 'rock', fraction: 0.2 },
    ]);
    m.setClassFractions('reef', [
      { name: 'water', fraction: 0.4 },
      { name: 'reef', fraction: 0.35 },
      { name: 'reef', fraction: 0.25 },
    ]);
    const f = parseExposition(await registry.metrics()).get('stegostream_class_fraction');
    expect(Object.fromEntries((f?.samples ?? []).map((x) => [x.labels.class, x.value]))).toEqual({ water: 0.4, reef: 0.6 });
  });

  it('the naming-rule check finds what promtool refuses', () => {
    const bad = [
      '# HELP a_total ok',
      '# TYPE a_total gauge',
      'a_total 1',
      '# TYPE b counter',
      'b 2',
      '# HELP c ok',
      '# TYPE c gauge',
      'c{x="1"} 1',
      'c{x="1"} 2',
    ].join('\n');
    expect(lintExposition(bad)).toEqual([
      'a_total: gauge with the _total suffix',
      'b: no help text',
      'b: counter without the _total suffix',
      'c{x=1}: duplicate series',
    ]);
  });
});
