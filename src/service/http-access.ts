/**
 * Who may use the service: the bearer token (header, the `/login` cookie or `?token=`), the
 * read-only token, and the browser origin check of `/ws`. Tokens are compared in constant time
 * as SHA-256 digests.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { READ_ONLY_ACCESS } from '../sinks/ws-hub.js';
import { send } from './http-replies.js';

const MAX_LOGIN_BODY_BYTES = 4096;

export interface HttpAccessOptions {
  readonly token?: string;
  readonly readOnlyToken?: string;
  readonly allowedOrigins?: readonly string[];
  /** HTTPS: the login cookie is marked Secure. */
  readonly secure: boolean;
  readonly log: Logger;
}

export class HttpAccess {
  private readonly tokenDigest: Buffer | undefined;
  private readonly readOnlyDigest: Buffer | undefined;
  private readonly allowedOrigins: ReadonlySet<string>;

  constructor(private readonly o: HttpAccessOptions) {
    this.tokenDigest = o.token === undefined ? undefined : digest(o.token);
    this.readOnlyDigest = o.readOnlyToken ? digest(o.readOnlyToken) : undefined;
    this.allowedOrigins = new Set(o.allowedOrigins ?? []);
  }

  /** 'full', 'read' (the read-only token) or undefined (refused). */
  private access(given: string | undefined): 'full' | 'read' | undefined {
    if (this.tokenDigest === undefined) return 'full';
    if (given === undefined) return undefined;
    const d = digest(given);
    if (timingSafeEqual(d, this.tokenDigest)) return 'full';
    if (this.readOnlyDigest !== undefined && timingSafeEqual(d, this.readOnlyDigest)) return 'read';
    return undefined;
  }

  /** True when the request carries a token that opens `/ws`; marks read-only access on `req`. */
  authorised(req: IncomingMessage, url: URL): boolean {
    const level = this.access(givenToken(req, url));
    if (level === 'read') (req as IncomingMessage & { [READ_ONLY_ACCESS]?: boolean })[READ_ONLY_ACCESS] = true;
    return level !== undefined;
  }

  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.allowedOrigins.has('*') || this.allowedOrigins.has(origin)) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  /** GET: the form; POST: checks the token and sets it as an HttpOnly cookie, then back to the viewer. */
  async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'POST') {
      const body = await readBody(req, MAX_LOGIN_BODY_BYTES);
      const token = new URLSearchParams(body).get('token') ?? '';
      if (body !== undefined && this.access(token) !== undefined && this.tokenDigest !== undefined) {
        const secure = this.o.secure ? '; Secure' : '';
        res.setHeader('Set-Cookie', `stegostream_token=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure}`);
        res.setHeader('Location', '/');
        send(res, 303, 'text/plain; charset=utf-8', 'signed in\n');
        return;
      }
      this.o.log.warn({ remote: req.socket.remoteAddress }, 'login refused: wrong token');
      send(res, 401, 'text/html; charset=utf-8', loginPage('Wrong token.'));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, POST');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    send(res, 200, 'text/html; charset=utf-8', loginPage(''));
  }
}

function givenToken(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  const bearer = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  const cookie = /(?:^|;\s*)stegostream_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  return bearer ?? (cookie !== undefined ? decodeURIComponent(cookie) : undefined) ?? url.searchParams.get('token') ?? undefined;
}

/** The request body as text, or undefined when it is longer than `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function loginPage(problem: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>stegostream: sign in</title></head><body>
<form method="post" action="/login"><h1>stegostream</h1>${problem ? `<p role="alert">${problem}</p>` : ''}
<label>Token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></body></html>
`;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
