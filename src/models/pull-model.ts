import cliProgress from 'cli-progress';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EnvHttpProxyAgent } from 'undici';
import { ModelIntegrityError, ModelOfflineError } from '../errors.js';
import { downloadFile, DEFAULT_HTTP_TIMEOUT_MS } from './download-file.js';
import { cacheRoot, DIGEST_SUFFIX, fileSha256, manualCopyHint, modelDir, readDigest } from './model-cache.js';
import { CONFIG_FILES, DEFAULT_REVISION, VARIANT_FILES, type ModelRef, type Variant } from './model-catalog.js';

/** The hub's address: `HF_ENDPOINT` as the hub's own clients honour it, else huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env['HF_ENDPOINT'] || 'https://huggingface.co').replace(/\/+$/, '');
}

/** Offline by choice: STEGOSTREAM_OFFLINE=1 (or HF_HUB_OFFLINE=1, the hub clients' switch). */
export function offlineMode(env: NodeJS.ProcessEnv = process.env): boolean {
  const on = (v: string | undefined): boolean => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase());
  return on(env['STEGOSTREAM_OFFLINE']) || on(env['HF_HUB_OFFLINE']);
}

export interface PullOptions {
  readonly variant: Variant;
  readonly timeoutMs?: number;
  /** Progress bar (terminal) or a line per file (otherwise) on stderr. */
  readonly progress?: boolean;
}

export interface PulledFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
  /** downloaded and checked against the server's SHA-256, downloaded (no SHA-256 sent), or already cached. */
  readonly state: 'verified' | 'downloaded' | 'cached';
  readonly resumed: boolean;
}

export interface PullResult {
  readonly dir: string;
  readonly model: string;
  readonly files: readonly PulledFile[];
}

/**
 * `models pull`: fetches config.json, preprocessor_config.json and the variant's ONNX file into the
 * cache (see downloadFile for resume, verification and the temporary name). A cached ONNX file is
 * re-checked against its digest first and fetched again when it no longer matches. Offline mode
 * is a ModelOfflineError saying how to copy the files in by hand.
 */
export async function pullModel(ref: ModelRef, opts: PullOptions): Promise<PullResult> {
  const root = cacheRoot();
  const hint = manualCopyHint(ref, opts.variant, root);
  if (offlineMode()) {
    throw new ModelOfflineError(ref.name, 'offline mode is on (STEGOSTREAM_OFFLINE or HF_HUB_OFFLINE)', `Unset it to download. ${hint}`);
  }
  const dir = modelDir(ref, root);
  const endpoint = hubEndpoint();
  const token = process.env['HF_TOKEN'] || undefined;
  const dispatcher = new EnvHttpProxyAgent();
  const files: PulledFile[] = [];
  try {
    for (const file of [...CONFIG_FILES, VARIANT_FILES[opts.variant]]) {
      const dest = join(dir, file);
      const onnx = file.endsWith('.onnx');
      if (existsSync(dest)) {
        const kept = readDigest(dest);
        if (!onnx || kept === null) {
          files.push({ path: dest, bytes: 0, sha256: kept ?? '', state: 'cached', resumed: false });
          continue;
        }
        const now = await fileSha256(dest);
        if (now === kept) {
          files.push({ path: dest, bytes: 0, sha256: now, state: 'cached', resumed: false });
          continue;
        }
        note(opts, `${file}: ${new ModelIntegrityError(dest, kept, now, 'fetching it again.').message}`);
        await rm(dest, { force: true });
        await rm(dest + DIGEST_SUFFIX, { force: true });
      }
      const url = `${endpoint}/${ref.repo}/resolve/${DEFAULT_REVISION}/${file}`;
      const bar = onnx ? progressBar(opts, file) : undefined;
      try {
        const r = await downloadFile({
          url,
          dest,
          offlineHint: hint,
          dispatcher,
          timeoutMs: opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
          tokenOrigin: new URL(endpoint).origin,
          ...(token ? { token } : {}),
          ...(bar ? { onProgress: bar.update } : {}),
        });
        bar?.stop();
        const how = r.verified ? 'SHA-256 verified' : 'no SHA-256 from the server: digest recorded';
        note(opts, `${file}: ${formatBytes(r.bytes)}${r.resumed ? ', resumed' : ''}, ${how}`);
        files.push({ path: dest, bytes: r.bytes, sha256: r.sha256, state: r.verified ? 'verified' : 'downloaded', resumed: r.resumed });
      } catch (err) {
        bar?.stop();
        throw err;
      }
    }
  } finally {
    await dispatcher.close();
  }
  return { dir, model: join(dir, VARIANT_FILES[opts.variant]), files };
}

function note(opts: PullOptions, line: string): void {
  if (opts.progress !== false) process.stderr.write(`stegostream: ${line}\n`);
}

/** A byte bar on a terminal; elsewhere nothing until the file's summary line. */
function progressBar(
  opts: PullOptions,
  file: string,
): { update: (done: number, total: number | undefined) => void; stop: () => void } | undefined {
  if (opts.progress === false || !process.stderr.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${file} [{bar}] {percentage}% | {got} of {size} | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 200,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update: (done, total): void => {
      const fields = { got: formatBytes(done), size: total !== undefined ? formatBytes(total) : '?' };
      if (!started) {
        started = true;
        bar.start(total ?? 0, done, fields);
      } else {
        if (total !== undefined) bar.setTotal(total);
        bar.update(done, fields);
      }
    },
    stop: (): void => {
      if (started) bar.stop();
    },
  };
}

export function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`;
}
