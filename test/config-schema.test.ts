/**
 * The pipeline schema and loader: whole error messages (path, what was expected, what was
 * received), environment variables, defaults, freezing.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputNotFoundError } from '../src/errors.js';
import { loadPipeline, parsePipeline } from '../src/config/load-pipeline.js';
import { LEARNING_DEFAULTS } from '../src/learning/learning-options.js';
import { tempDir } from './helpers/cli.js';

const SCENE = 'sources:\n  - { use: scene, name: reef }\n';

/** The whole message of the ConfigError that parsing `text` throws. */
function problem(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parsePipeline(text, 'file "t.yaml"', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('E_CONFIG');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const invalid = (...lines: string[]): string => `Invalid pipeline file "t.yaml":\n  ${lines.join('\n  ')}`;

describe('pipeline schema', () => {
  it('rejects an unknown key with its path', () => {
    expect(problem('sources:\n  - { use: scene, name: reef, with: { fps: 15, colour: red } }\n')).toBe(
      invalid('sources[0].with: unknown key "colour"'),
    );
    expect(problem(`${SCENE}modle: { width: 448 }\n`)).toBe(invalid('(top level): unknown key "modle"'));
  });

  it('says where a value has the wrong type, what was expected and what it got', () => {
    expect(problem(`${SCENE}service: { port: 80a }\n`)).toBe(invalid('service.port: expected integer 0-65535, received "80a"'));
    expect(problem(`${SCENE}service: { port: 70000 }\n`)).toBe(invalid('service.port: expected integer 0-65535, received 70000'));
    expect(problem(`${SCENE}model: { batch: { size: 1.5 } }\n`)).toBe(invalid('model.batch.size: expected integer 1-64, received 1.5'));
    expect(problem(`${SCENE}learning: { freeze: "yes" }\n`)).toBe(invalid('learning.freeze: expected boolean, received "yes"'));
    expect(problem(`${SCENE}learning: { maxDispersionRatio: 0.5 }\n`)).toBe(
      invalid('learning.maxDispersionRatio: expected a number >= 1, or 0 for no check, received 0.5'),
    );
    expect(problem(`${SCENE}learning: { lrDecaySteps: -1 }\n`)).toBe(invalid('learning.lrDecaySteps: expected integer >= 0, received -1'));
    expect(problem(`${SCENE}model: { refine: { eps: 0 } }\n`)).toBe(invalid('model.refine.eps: expected number > 0, received 0'));
    expect(problem(`${SCENE}model: { refine: { radius: 2.5 } }\n`)).toBe(
      invalid('model.refine.radius: expected integer >= 0, received 2.5'),
    );
    expect(problem(`${SCENE}learning: { cpuShare: 0 }\n`)).toBe(
      invalid('learning.cpuShare: expected a number in (0, 1] (1 = no limit), received 0'),
    );
    expect(problem(`${SCENE}model: { device: gpu }\n`)).toBe(
      invalid('model.device: expected one of "auto", "cpu", "cuda", "tensorrt", "webgpu", received "gpu"'),
    );
    expect(problem('sources:\n  - { use: camera, name: reef }\n')).toBe(
      invalid('sources[0].use: expected one of "scene", "file", "live", received "camera"'),
    );
    expect(problem('sources:\n  - { use: scene, name: "reef cam" }\n')).toBe(
      invalid('sources[0].name: expected 1-64 characters of A-Z a-z 0-9 _ - (it becomes a NATS subject token), received "reef cam"'),
    );
    expect(problem(`${SCENE}sinks:\n  - { use: nats, with: { prefix: stego } }\n`)).toBe(
      invalid('sinks[0].with.servers: expected a NATS URL like "nats://127.0.0.1:4222" or a list of them, received nothing'),
    );
    expect(problem('name: x\n')).toBe(invalid('sources: expected a list of sources, received nothing'));
    expect(problem('sources: []\n')).toBe(invalid('sources: expected at least one source, received []'));
  });

  it('lists every problem, each on its own line', () => {
    expect(problem(`${SCENE}service: { port: -1, host: "" }\nmodel: { width: 0 }\n`)).toBe(
      invalid(
        'service.host: expected a host name or address, received ""',
        'service.port: expected integer 0-65535, received -1',
        'model.width: expected integer >= 1, received 0',
      ),
    );
  });

  it('checks a live URL against its options', () => {
    const live = (w: string): string => problem(`sources:\n  - { use: live, name: rov, with: ${w} }\n`);
    expect(live('{ url: "ftp://rov/cam" }')).toBe(
      invalid(
        'sources[0].with.url: expected a live URL (rtsp://, rtp://, udp://, srt://, rtmp://, rtmps://, http://, https://), a V4L2 device (/dev/videoN) or an .sdp file path, received "ftp://rov/cam"',
      ),
    );
    expect(live('{ url: "udp://0.0.0.0:5600", transport: tcp }')).toBe(
      invalid('sources[0].with.transport: expected no transport (it applies to rtsp:// URLs only), received "tcp"'),
    );
    expect(live('{ url: "udp://0.0.0.0" }')).toBe(
      invalid('sources[0].with.url: expected a URL with a port 1-65535 (scheme://host:port), received "udp://0.0.0.0"'),
    );
    expect(live('{ url: "rtp://0.0.0.0:5600", sdp: "m=video" }')).toBe(
      invalid('sources[0].with.sdp: expected SDP text starting with "v=0", received "m=video"'),
    );
  });

  it('rejects two sources of the same name, pointing at the second', () => {
    expect(problem('sources:\n  - { use: scene, name: cam }\n  - { use: live, name: cam, with: { url: "udp://0.0.0.0:5600" } }\n')).toBe(
      invalid('sources[1].name: expected a name not used before (sources[0] is named so too; names key every output), received "cam"'),
    );
  });

  it('checks settings that only make sense together', () => {
    expect(problem(`${SCENE}learning: { classes: 2, names: [water, sand, rock] }\n`)).toBe(
      invalid('learning.names: expected at most 2 names (learning.classes + learning.extraClusters), received ["water","sand","rock"]'),
    );
    expect(problem(`${SCENE}learning: { resume: true }\n`)).toBe(
      invalid('learning.resume: expected learning.checkpoint to be set too (the file to resume from), received true'),
    );
    expect(problem(`${SCENE}sinks: [{ use: websocket }, { use: websocket }]\n`)).toBe(
      invalid('sinks[1].use: expected one websocket sink at most (the service has one /ws endpoint), received "websocket"'),
    );
    expect(
      problem('sources: [{ use: scene, name: a }, { use: scene, name: b }]\nsinks: [{ use: stats-file, with: { path: out/stats.csv } }]\n'),
    ).toBe(
      invalid(
        'sinks[0].with.path: expected {stream} in a .csv path when there are several sources (CSV columns are one stream\'s classes), or a .jsonl path, received "out/stats.csv"',
      ),
    );
    expect(problem(`${SCENE}sinks: [{ use: stats-file, with: { path: out/stats.txt } }]\n`)).toBe(
      invalid('sinks[0].with.path: expected a file path ending in .csv or .jsonl, received "out/stats.txt"'),
    );
  });

  it('reports a YAML syntax error with its line', () => {
    expect(problem('sources:\n  - { use: scene, name: reef\n')).toMatch(
      /^Invalid pipeline file "t.yaml":\n {2}YAML: .+ at line \d+, column \d+$/,
    );
  });
});

describe('environment variables', () => {
  it('fill ${NAME} and ${NAME:-default}; a lone placeholder takes the type of its text', () => {
    const c = parsePipeline(
      'service: { port: "${PORT:-8080}", token: "${TOKEN}" }\nsources:\n  - { use: live, name: cam, with: { url: "udp://${HOST:-0.0.0.0}:${UDP_PORT}" } }\n',
      't',
      {
        TOKEN: 's3cret',
        UDP_PORT: '5601',
      },
    );
    expect(c.service.port).toBe(8080);
    expect(c.service.token).toBe('s3cret');
    expect(c.sources[0]).toMatchObject({ with: { url: 'udp://0.0.0.0:5601' } });
  });

  it('keep the text where the schema wants a string (a numeric token stays a string)', () => {
    const c = parsePipeline(`${SCENE}service: { token: "\${TOKEN}", port: "\${PORT}" }\n`, 't', { TOKEN: '0123', PORT: '9000' });
    expect(c.service.token).toBe('0123');
    expect(c.service.port).toBe(9000);
  });

  it('name the variable that is missing, with its path and the fix', () => {
    expect(problem('sources:\n  - { use: file, name: dive, with: { path: "${DIVE_VIDEO}" } }\n')).toBe(
      invalid('sources[0].with.path: environment variable DIVE_VIDEO is not set (use ${DIVE_VIDEO:-default} for a default)'),
    );
    // Set but empty counts as missing.
    expect(problem('sources:\n  - { use: file, name: dive, with: { path: "${DIVE_VIDEO}" } }\n', { DIVE_VIDEO: '' })).toBe(
      invalid('sources[0].with.path: environment variable DIVE_VIDEO is not set (use ${DIVE_VIDEO:-default} for a default)'),
    );
  });
});

describe('defaults and freezing', () => {
  it('fills every default', () => {
    const c = parsePipeline(SCENE, 't', {});
    expect(c).toEqual({
      name: 'pipeline',
      service: { host: '127.0.0.1', port: 8080, token: '', shutdownTimeoutMs: 10000 },
      sources: [{ use: 'scene', name: 'reef', with: { variant: 'easy', seed: 7, fps: 15, frames: 300, loop: true } }],
      model: {
        backbone: 'builtin',
        device: 'auto',
        width: 448,
        batch: { size: 4, maxDelayMs: 20 },
        objects: false,
        refine: { radius: 8, eps: 1e-5 },
      },
      learning: {
        classes: LEARNING_DEFAULTS.k,
        maxClasses: LEARNING_DEFAULTS.maxClasses,
        extraClusters: 0,
        codeDim: LEARNING_DEFAULTS.codeDim,
        trainEvery: LEARNING_DEFAULTS.trainEvery,
        trainSteps: LEARNING_DEFAULTS.trainSteps,
        lrDecaySteps: LEARNING_DEFAULTS.lrDecaySteps,
        maxDispersionRatio: LEARNING_DEFAULTS.maxDispersionRatio,
        cpuShare: LEARNING_DEFAULTS.cpuShare,
        bankFrames: LEARNING_DEFAULTS.bankFrames,
        warmupFrames: 1,
        seed: LEARNING_DEFAULTS.seed,
        resume: false,
        freeze: false,
      },
      sinks: [
        { use: 'websocket', with: { jpegQuality: 75, maxWidth: 0, maxPayloadBytes: 65536, heartbeatIntervalMs: 30000, maxClients: 256 } },
      ],
    });
  });

  it('fills defaults inside entries', () => {
    const c = parsePipeline(
      'sources:\n  - { use: live, name: rov, with: { url: "rtp://0.0.0.0:5600", backoff: { maxMs: 8000 } } }\nsinks:\n  - { use: nats, with: { servers: "nats://127.0.0.1:4222", jetstream: {} } }\n',
      't',
      {},
    );
    expect(c.sources[0]).toEqual({
      use: 'live',
      name: 'rov',
      with: {
        url: 'rtp://0.0.0.0:5600',
        stallTimeoutMs: 5000,
        queue: 2,
        backoff: { initialMs: 500, maxMs: 8000, factor: 2, jitter: 0.2, resetAfterMs: 10000 },
      },
    });
    expect(c.sinks[0]).toEqual({
      use: 'nats',
      with: {
        servers: 'nats://127.0.0.1:4222',
        prefix: 'stegostream',
        frames: true,
        masks: false,
        reconnectBufSize: 8 * 1024 * 1024,
        jetstream: { stream: 'STEGOSTREAM_STATS', maxAgeMs: 604_800_000, maxBytes: 1024 ** 3 },
      },
    });
  });

  it('freezes the result all the way down', () => {
    const c = parsePipeline(`${SCENE}learning: { names: [water] }\n`, 't', {});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.sources[0]?.with)).toBe(true);
    expect(Object.isFrozen(c.learning.names)).toBe(true);
    expect(() => {
      (c.service as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('loadPipeline', () => {
  it('reads a file and names it in errors', async () => {
    const dir = await tempDir();
    const file = join(dir, 'p.yaml');
    await writeFile(file, `${SCENE}service: { port: x }\n`);
    await expect(loadPipeline(file, {})).rejects.toThrow(
      `Invalid pipeline file "${file}":\n  service.port: expected integer 0-65535, received "x"`,
    );
    await expect(loadPipeline(join(dir, 'missing.yaml'), {})).rejects.toThrow(InputNotFoundError);
    await expect(loadPipeline(join(dir, 'missing.yaml'), {})).rejects.toThrow(
      `Cannot read pipeline file "${join(dir, 'missing.yaml')}": no such file or folder. Check the path.`,
    );
  });
});
