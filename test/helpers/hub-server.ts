/**
 * A loopback stand-in for the Hugging Face hub, serving folders in the transformers.js layout the
 * way the hub does: `/{owner}/{repo}/resolve/{revision}/{path}`; ONNX (LFS) files answer 302 to a
 * CDN path with the SHA-256 in `X-Linked-Etag` and the size in `X-Linked-Size`; JSON files answer
 * 200 with a git-style SHA-1 ETag. The CDN honours Range. Faults are switched on per test.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';

export interface HubRequest {
  readonly url: string;
  readonly range?: string;
  readonly authorization?: string;
}

export interface HubFaults {
  /** Paths (`onnx/model.onnx`) whose next body is cut half-way (socket destroyed), once each. */
  cutOnce: Set<string>;
  /** Paths whose next body has a flipped byte, once each. */
  corruptOnce: Set<string>;
  /** Accept connections and never answer. */
  hang: boolean;
  /** Repositories (`owner/repo`) that answer 401 without this bearer token. */
  tokenFor: Map<string, string>;
}

export interface HubServer {
  readonly url: string;
  readonly requests: HubRequest[];
  readonly faults: HubFaults;
  /** Bytes of a file as served (for expected digests). */
  file(repo: string, path: string): Buffer;
  close(): Promise<void>;
}

/** Serves `root/{owner}/{repo}/...` on 127.0.0.1, port chosen by the OS. */
export async function startHubServer(root: string): Promise<HubServer> {
  const requests: HubRequest[] = [];
  const faults: HubFaults = { cutOnce: new Set(), corruptOnce: new Set(), hang: false, tokenFor: new Map() };
  const sockets = new Set<Socket>();
  const bySha = new Map<string, { repo: string; path: string }>();
  const read = (repo: string, path: string): Buffer => readFileSync(join(root, repo, path));

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({
      url: url.pathname,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    if (faults.hang) return; // never answers; the socket is destroyed on close()
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const entry = bySha.get(cdn[1] as string);
      if (!entry) return void res.writeHead(404).end('no such object');
      return serveBody(req, res, entry.repo, entry.path);
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/.exec(url.pathname);
    const repo = m?.[1] ?? '';
    const path = m?.[2] ?? '';
    const file = join(root, repo, path);
    if (!m || path.includes('..') || !existsSync(file) || !statSync(file).isFile()) {
      return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    }
    const token = faults.tokenFor.get(repo);
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('Access to this repository is restricted');
    }
    const bytes = read(repo, path);
    if (path.endsWith('.onnx')) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      bySha.set(sha, { repo, path });
      res.writeHead(302, {
        location: `/cdn/${sha}`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(bytes.length),
        'x-repo-commit': '0'.repeat(40),
        etag: '"' + createHash('sha1').update(bytes).digest('hex') + '"',
      });
      return void res.end();
    }
    res.writeHead(200, {
      'content-length': bytes.length,
      etag: '"' + createHash('sha1').update(bytes).digest('hex') + '"',
      'content-type': 'application/json',
    });
    res.end(bytes);
  };

  const serveBody = (req: IncomingMessage, res: ServerResponse, repo: string, path: string): void => {
    let bytes = read(repo, path);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= bytes.length && range) {
      return void res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
    }
    if (faults.corruptOnce.delete(path)) {
      bytes = Buffer.from(bytes);
      const i = Math.floor(bytes.length / 2);
      bytes[i] = (bytes[i] as number) ^ 0xff;
    }
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-length': body.length,
      'accept-ranges': 'bytes',
      etag: '"cdn-object"',
      ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (faults.cutOnce.delete(path)) {
      // End the connection (FIN) after half the body, not destroy it: a reset makes a busy client
      // drop the bytes it has not read yet, and then nothing is left to resume from.
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.end());
      return;
    }
    res.end(body);
  };

  const server: Server = createServer(handle);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    file: read,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
