import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { DEVICES, runsOnGpu, type Device } from '../backbone/execution-device.js';
import { cachedVariants, cacheRoot, DIGEST_SUFFIX, modelDir, variantPath } from '../models/model-cache.js';
import { approxBytes, defaultVariant, KNOWN_MODELS, parseModelName, RECOMMENDED, VARIANTS, type Variant } from '../models/model-catalog.js';
import { formatBytes, hubEndpoint, pullModel } from '../models/pull-model.js';
import { cachedRepos } from '../models/cached-repos.js';
import { positiveInt } from './parse-options.js';

/** `--variant`, shared by `models pull` and the commands that take `--backbone`. */
export function variantOption(): Option {
  return new Option(
    '--variant <variant>',
    'which ONNX file of a hub model: fp32 (model.onnx), fp16 (model_fp16.onnx), int8 (model_quantized.onnx); default fp32 on the CPU, fp16 on a GPU',
  ).choices(VARIANTS);
}

interface PullFlags {
  variant?: Variant;
  device: Device;
  timeout: number;
  progress: boolean;
}

export function registerModels(program: Command): void {
  const models = program.command('models').description('DINO backbones from the Hugging Face hub: list, pull into the cache, remove');
  models
    .command('list')
    .description('known models, their size, whether cached, and which is recommended for CPU and GPU')
    .option('--json', 'print the list as JSON on stdout', false)
    .action((flags: { json: boolean }) => {
      const rows = listModels();
      process.stdout.write(flags.json ? JSON.stringify({ cache: cacheRoot(), models: rows }, null, 2) + '\n' : formatList(rows));
    });
  models
    .command('pull')
    .description('download a model into the cache: resumable, SHA-256 verified, HF_ENDPOINT / HF_TOKEN / HTTPS_PROXY honoured')
    .argument('<name>', `${KNOWN_MODELS.map((m) => m.name).join(', ')}, or hub:OWNER/REPO`)
    .addOption(variantOption())
    .addOption(new Option('--device <device>', 'the device the model is for (picks the default variant)').choices(DEVICES).default('auto'))
    .option('--timeout <s>', 'seconds to wait for an answer or for more data before retrying', positiveInt('--timeout'), 30)
    .option('--no-progress', 'no progress bar')
    .action(async (name: string, flags: PullFlags) => {
      const ref = parseModelName(name);
      const variant = flags.variant ?? defaultVariant(runsOnGpu(flags.device));
      process.stderr.write(`stegostream: pulling ${name} (${variant}) from ${hubEndpoint()}/${ref.repo}\n`);
      const r = await pullModel(ref, { variant, timeoutMs: flags.timeout * 1000, progress: flags.progress });
      const fetched = r.files.filter((f) => f.state !== 'cached').length;
      process.stdout.write(
        `${name} (${variant}) ${fetched === 0 ? 'was already cached' : 'is cached'}: ${r.model}\n` +
          `use it with: stegostream process VIDEO --backbone ${name}${flags.variant ? ` --variant ${variant}` : ''}\n`,
      );
    });
  models
    .command('rm')
    .description('remove a model (or one --variant of it) from the cache')
    .argument('<name>', 'a model name as in models list, or hub:OWNER/REPO')
    .addOption(variantOption())
    .action(async (name: string, flags: { variant?: Variant }) => {
      const ref = parseModelName(name);
      const dir = modelDir(ref);
      if (!existsSync(dir)) {
        process.stdout.write(`${name} is not in the cache (${dir})\n`);
        return;
      }
      if (flags.variant) {
        const path = variantPath(ref, flags.variant);
        await Promise.all([path, path + DIGEST_SUFFIX, path + '.part'].map((p) => rm(p, { force: true })));
        process.stdout.write(`removed ${name} (${flags.variant}) from ${dir}\n`);
        return;
      }
      await rm(dir, { recursive: true, force: true });
      process.stdout.write(`removed ${name} (${dir})\n`);
    });
}

export interface ModelRow {
  readonly name: string;
  readonly repo: string;
  readonly description: string;
  /** Approximate download per variant (catalog), bytes; null for repositories outside it. */
  readonly sizes: Readonly<Record<Variant, number>> | null;
  readonly cached: readonly { variant: Variant; bytes: number; digest: boolean }[];
  readonly recommended: readonly ('cpu' | 'gpu')[];
}

/** Known models plus any other hub repository found in the cache. */
export function listModels(): ModelRow[] {
  const rows: ModelRow[] = KNOWN_MODELS.map((m) => {
    const ref = parseModelName(m.name);
    return {
      name: m.name,
      repo: m.repo,
      description: m.description,
      sizes: Object.fromEntries(VARIANTS.map((v) => [v, approxBytes(m, v)])) as Record<Variant, number>,
      cached: cachedVariants(ref).map((c) => ({ variant: c.variant, bytes: c.bytes, digest: c.sha256 !== null })),
      recommended: (['cpu', 'gpu'] as const).filter((d) => RECOMMENDED[d] === m.name),
    };
  });
  for (const repo of cachedRepos()) {
    if (KNOWN_MODELS.some((m) => m.repo === repo)) continue;
    const ref = parseModelName(`hub:${repo}`);
    const cached = cachedVariants(ref).map((c) => ({ variant: c.variant, bytes: c.bytes, digest: c.sha256 !== null }));
    if (cached.length > 0) rows.push({ name: `hub:${repo}`, repo, description: 'from the cache', sizes: null, cached, recommended: [] });
  }
  return rows;
}

function formatList(rows: readonly ModelRow[]): string {
  const gpu = runsOnGpu('auto');
  const lines = [
    `cache: ${cacheRoot()}`,
    `this machine runs --device auto on the ${gpu ? 'GPU' : 'CPU'}: default variant ${defaultVariant(gpu)}`,
    '',
    `${'NAME'.padEnd(22)} ${'DOWNLOAD fp32 / fp16 / int8'.padEnd(34)} ${'CACHED'.padEnd(24)} RECOMMENDED`,
  ];
  for (const r of rows) {
    const sizes = r.sizes ? VARIANTS.map((v) => `~${formatBytes(r.sizes?.[v] ?? 0)}`).join(' / ') : '-';
    const cached = r.cached.length ? r.cached.map((c) => `${c.variant} ${formatBytes(c.bytes)}`).join(', ') : 'no';
    const rec = r.recommended.map((d) => `for ${d.toUpperCase()}`).join(', ');
    lines.push(`${r.name.padEnd(22)} ${sizes.padEnd(34)} ${cached.padEnd(24)} ${rec}`);
  }
  lines.push(
    '',
    'pull one with: stegostream models pull NAME [--variant fp32|fp16|int8]; any repository in the same layout: hub:OWNER/REPO',
  );
  return lines.join('\n') + '\n';
}
