import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { ModelDownloadError, ModelIntegrityError } from '../errors.js';
import { DIGEST_SUFFIX, fileSha256, PART_SUFFIX } from './model-cache.js';

/** Default wait for response headers and between body chunks, ms. */
export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
/** Attempts per file: a cut connection resumes from where it stopped (HTTP Range). */
export const DOWNLOAD_ATTEMPTS = 3;
const NO_NETWORK = 'no network connection to the server';
/** Redirects followed per request (the hub sends LFS files to a CDN). */
const MAX_REDIRECTS = 10;

export interface DownloadOptions {
  readonly url: string;
  /** Final path; the download is written to `dest.part` and renamed once complete and verified. */
  readonly dest: string;
  /** Sent as a bearer token to `tokenOrigin` only (never to the CDN a redirect leads to). */
  readonly token?: string;
  readonly tokenOrigin?: string;
  readonly timeoutMs?: number;
  readonly dispatcher?: Dispatcher;
  /** Called with bytes so far and the total when known. */
  readonly onProgress?: (done: number, total: number | undefined) => void;
  /** Text for errors: what to do when the network cannot be used (manual copy into the cache). */
  readonly offlineHint: string;
}

export interface DownloadResult {
  readonly bytes: number;
  readonly sha256: string;
  /** The server gave a SHA-256 and the file matched it. */
  readonly verified: boolean;
  /** Some bytes came from an earlier, interrupted download. */
  readonly resumed: boolean;
}

/** What the hub says about a file: huggingface_hub reads X-Linked-Etag, then ETag (LFS files carry their SHA-256 there). */
interface RemoteMeta {
  sha256?: string;
  size?: number;
}

/**
 * Downloads one file the way a user can trust: to a temporary `.part` name, resumed with an HTTP
 * Range request after a cut connection, verified against the SHA-256 the hub sends for LFS files
 * (refused and fetched once more from zero when it does not match), its digest kept beside it in
 * `dest.sha256`, and only then renamed into place. Redirects are followed by hand so the token goes
 * to the hub alone. Errors are ModelDownloadError / ModelIntegrityError naming the URL and the fix.
 */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const part = opts.dest + PART_SUFFIX;
  await mkdir(dirname(opts.dest), { recursive: true });
  let resumed = false;
  let refetched = false;
  let lastError: unknown;
  let meta: RemoteMeta = {};
  for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS + 1; attempt++) {
    const have = await sizeOf(part);
    try {
      const got = await fetchInto(opts, part, have);
      meta = { ...meta, ...got.meta };
      resumed ||= got.resumedFrom > 0;
    } catch (err) {
      if (!(err instanceof Retry)) throw err;
      lastError = err;
      if (attempt >= DOWNLOAD_ATTEMPTS) break;
      continue;
    }
    const bytes = (await sizeOf(part)) ?? 0;
    const sha256 = await fileSha256(part);
    if (meta.sha256 !== undefined && sha256 !== meta.sha256) {
      await rm(part, { force: true });
      if (!refetched) {
        // Damaged on the way (or a stale .part of another version): once more, from zero.
        refetched = true;
        resumed = false;
        continue;
      }
      throw new ModelIntegrityError(
        opts.url,
        meta.sha256,
        sha256,
        'The download was refused twice; try again later, or check a proxy that rewrites downloads.',
      );
    }
    await writeFile(opts.dest + DIGEST_SUFFIX, sha256 + '\n');
    await rename(part, opts.dest);
    return { bytes, sha256, verified: meta.sha256 !== undefined, resumed };
  }
  const have = (await sizeOf(part)) ?? 0;
  throw new ModelDownloadError(
    opts.url,
    `${reasonOf(lastError, opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS)} (${DOWNLOAD_ATTEMPTS} attempts)`,
    have > 0
      ? `${(have / 1e6).toFixed(1)} MB are kept in ${part}: run the same command again to resume. ${opts.offlineHint}`
      : `Check the network (HTTPS_PROXY is honoured) and run the command again. ${opts.offlineHint}`,
    lastError,
  );
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/** One GET (following redirects), appended to `part` from byte `have` when the server honours Range. */
async function fetchInto(
  opts: DownloadOptions,
  part: string,
  have: number | undefined,
): Promise<{ meta: RemoteMeta; resumedFrom: number }> {
  const timeout = opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  const meta: RemoteMeta = {};
  let url = new URL(opts.url);
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'stegostream', 'accept-encoding': 'identity' };
    if (have) headers['range'] = `bytes=${have}-`;
    if (opts.token && url.origin === opts.tokenOrigin) headers['authorization'] = `Bearer ${opts.token}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        headers,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      });
    } catch (err) {
      const reason = reasonOf(err, timeout);
      // No route to the server at all: another attempt will not help; say how to work offline.
      if (reason.startsWith(NO_NETWORK)) {
        throw new ModelDownloadError(opts.url, reason, `Check the network (HTTPS_PROXY is honoured). ${opts.offlineHint}`, err);
      }
      throw retryable(opts.url, err, timeout);
    }
    readMeta(res.headers, meta);
    const status = res.statusCode;
    if (status >= 300 && status < 400 && res.headers['location']) {
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new ModelDownloadError(opts.url, `more than ${MAX_REDIRECTS} redirects`, 'Check HF_ENDPOINT.');
      url = new URL(String(res.headers['location']), url);
      continue;
    }
    if (status === 416) {
      // The .part is already as long as the file (or longer: another version): start again.
      await res.body.dump();
      await rm(part, { force: true });
      throw retryable(opts.url, new Error('the server refused the resume range'), timeout);
    }
    if (status !== 200 && status !== 206) {
      await res.body.dump();
      throw httpError(opts.url, status);
    }
    let start = 0;
    if (status === 206) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)/.exec(String(res.headers['content-range'] ?? ''));
      start = m ? Number(m[1]) : 0;
      if (m && m[2] !== '*') meta.size ??= Number(m[2]);
      if (start !== have) {
        await res.body.dump();
        await rm(part, { force: true });
        throw retryable(opts.url, new Error(`the server resumed at byte ${start}, not ${have}`), timeout);
      }
    } else {
      const length = numberHeader(res.headers['content-length']);
      if (length !== undefined) meta.size ??= length;
      if (have) await truncate(part, 0); // no Range support: from the start
    }
    let done = start;
    opts.onProgress?.(done, meta.size);
    // Every byte received reaches the .part file, also when the connection breaks: a pipeline
    // would destroy the file stream with its unwritten buffer, and the next attempt could then
    // find nothing to resume from.
    const file = createWriteStream(part, { flags: start > 0 ? 'a' : 'w' });
    let failure: unknown;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        done += chunk.length;
        opts.onProgress?.(done, meta.size);
        if (!file.write(chunk)) await once(file, 'drain');
      }
    } catch (err) {
      failure = err;
    }
    await new Promise<void>((resolve, reject) => {
      file.once('error', reject);
      file.end(resolve);
    }).catch((err: unknown) => (failure ??= err));
    if (failure !== undefined) throw retryable(opts.url, failure, timeout);
    if (meta.size !== undefined && done !== meta.size) {
      throw retryable(opts.url, new Error(`the connection ended after ${done} of ${meta.size} bytes`), timeout);
    }
    return { meta, resumedFrom: start };
  }
}

function readMeta(h: Dispatcher.ResponseData['headers'], meta: RemoteMeta): void {
  const etag = String(h['x-linked-etag'] ?? h['etag'] ?? '')
    .replace(/^W\//, '')
    .replace(/"/g, '')
    .toLowerCase();
  // LFS files: the SHA-256 of the content. Small files carry a git SHA-1 (40 hex), not checked.
  if (meta.sha256 === undefined && /^[0-9a-f]{64}$/.test(etag)) meta.sha256 = etag;
  const linked = numberHeader(h['x-linked-size']);
  if (linked !== undefined) meta.size ??= linked;
}

function numberHeader(v: string | string[] | undefined): number | undefined {
  const n = Number(Array.isArray(v) ? v[0] : v);
  return v !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined;
}

function httpError(url: string, status: number): ModelDownloadError | Retry {
  if (status === 404) {
    return new ModelDownloadError(
      url,
      'the server answered 404 Not Found',
      'Check the model name (stegostream models list) and, for hub:OWNER/REPO, that the repository holds config.json, preprocessor_config.json and onnx/model*.onnx; check HF_ENDPOINT if set.',
    );
  }
  if (status === 401 || status === 403) {
    return new ModelDownloadError(
      url,
      `the server answered ${status} (not authorised)`,
      'For a gated or private repository set HF_TOKEN to a token that may read it.',
    );
  }
  if (status >= 500 || status === 429) return new Retry(`the server answered HTTP ${status}`);
  return new ModelDownloadError(url, `the server answered HTTP ${status}`, 'Try again later.');
}

/** A failure worth another attempt (resuming what was written): cut connections, timeouts, 5xx. */
class Retry extends Error {
  constructor(
    readonly reason: string,
    cause?: unknown,
  ) {
    super(reason, cause === undefined ? undefined : { cause });
  }
}

function retryable(_url: string, err: unknown, timeoutMs: number): Retry {
  return new Retry(reasonOf(err, timeoutMs), err);
}

/** Words for a network failure: timeouts and unreachable hosts said plainly. */
function reasonOf(err: unknown, timeoutMs: number): string {
  if (err instanceof Retry) return err.reason;
  const e = err as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  const code = e?.code ?? e?.cause?.code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `the server did not answer within ${timeoutMs / 1000} s`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `the server stopped sending data for ${timeoutMs / 1000} s`;
  if (['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH'].includes(code)) {
    return `${NO_NETWORK} (${code})`;
  }
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') return 'the connection was cut';
  return e?.message ?? String(err);
}
