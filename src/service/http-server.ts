/**
 * The service's one HTTP server: `/` the live viewer, `/ws` the WebSocket hub, `/metrics`
 * (Prometheus text), `/healthz` (the process is alive) and `/readyz` (the pipeline says it is
 * ready). Binds 127.0.0.1 unless told otherwise.
 *
 * With a `token`, `/ws` (and so every control request) needs `Authorization: Bearer <token>`, the
 * cookie the `/login` form sets, or (for scripts) `?token=<token>`. The viewer page passes on the
 * `token` of its own URL. A `readOnlyToken` opens `/ws` for watching only (control other than
 * status is refused). Tokens are compared in constant time (as SHA-256 digests). With `tls`, the
 * server speaks HTTPS and WSS only; with `tls.ca`, clients must present a certificate it signed. Browser connections from another origin are refused (403) unless
 * listed in `allowedOrigins`, so a web page cannot drive a local service behind the user's back.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createLogger } from '../internal/logger.js';
import { ConfigError, ListenError } from '../errors.js';
import type { WsHub } from '../sinks/ws-hub.js';
import { HttpAccess } from './http-access.js';
import { refuse, send, sendJson } from './http-replies.js';
import { nonNegativeInt } from '../internal/check-options.js';
import { VIEWER_HTML } from './viewer-page.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_HTTP_CLOSE_TIMEOUT_MS = 2_000;

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

export interface HttpServiceOptions {
  /** Serves `/ws`; without it `/ws` is 404. Closed by `close()`. */
  readonly hub?: WsHub;
  /** A hub comes later (`attachHub`, once the pipeline has started): `/ws` answers 503 until then. */
  readonly hubLater?: boolean;
  /** How the user picks another port, for the error when the port cannot be bound (default: "choose another host or port"). */
  readonly portHint?: string;
  /** Served on `/metrics`, concatenated in order (default: the hub's registry). */
  readonly registry?: Registry | readonly Registry[];
  /** Asked on every `/readyz`; without it the service is never ready. */
  readonly ready?: () => Readiness;
  /** Interface to bind (default 127.0.0.1; "0.0.0.0" exposes the service to the network). */
  readonly host?: string;
  /** TCP port (default 8080; 0 picks a free one, see `port` on the result). */
  readonly port?: number;
  /** Bearer token required on `/ws`; none by default. */
  readonly token?: string;
  /** A second token that may watch (`/ws`) but not rename, pause, resume or snapshot. */
  readonly readOnlyToken?: string;
  /** PEM certificate and key (and CA for client certificates): HTTPS and WSS instead of HTTP and WS. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string };
  /** Origins (e.g. "https://ops.example") allowed to open `/ws` besides the service's own; "*" allows any. */
  readonly allowedOrigins?: readonly string[];
  readonly logger?: Logger;
  /** How long `close()` waits for clients before cutting them off, ms (default 2000). */
  readonly closeTimeoutMs?: number;
}

export interface HttpService {
  readonly host: string;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** `http://host:port` (`https://` with tls) */
  readonly url: string;
  readonly server: Server | HttpsServer;
  /** Serves `/ws` from now on (see `hubLater`); the hub is closed by `close()`. */
  attachHub(hub: WsHub): void;
  /** Closes WebSocket clients (1001, then terminate after the timeout) and the server; idempotent. */
  close(): Promise<void>;
}

/** Starts listening; rejects with ListenError when the address cannot be bound. */
export async function startHttpService(options: HttpServiceOptions = {}): Promise<HttpService> {
  const host = options.host ?? DEFAULT_HOST;
  const port = nonNegativeInt('port', options.port, DEFAULT_PORT);
  if (port > 65535) throw new ConfigError('http', [`port: expected integer 0-65535, received ${port}`]);
  const closeTimeoutMs = nonNegativeInt('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_HTTP_CLOSE_TIMEOUT_MS);
  if (options.token !== undefined && options.token.length === 0) throw new ConfigError('http', ['token: expected a non-empty string']);
  const log = (options.logger ?? createLogger()).child({ stage: 'http' });
  let hub = options.hub;
  let hubPending = options.hubLater === true && hub === undefined;
  const registries = options.registry === undefined ? [hub?.registry ?? new Registry()] : [options.registry].flat();
  if (options.readOnlyToken !== undefined && options.token === undefined) {
    throw new ConfigError('http', ['readOnlyToken: needs token as well (without a token everyone may change everything)']);
  }
  const tls = options.tls;
  const access = new HttpAccess({
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.readOnlyToken === undefined ? {} : { readOnlyToken: options.readOnlyToken }),
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
    secure: tls !== undefined,
    log,
  });
  const routes = serviceRoutes(access, registries, () => readiness(options.ready));

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    routes(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  };
  const server =
    tls === undefined
      ? createServer(onRequest)
      : createHttpsServer(
          { cert: tls.cert, key: tls.key, ...(tls.ca !== undefined ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) },
          onRequest,
        );

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err }, 'upgrade socket error'));
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ws' && hubPending) return refuse(socket, 503, 'Service Unavailable', 'Retry-After: 1\r\n');
    if (url.pathname !== '/ws' || hub === undefined) return refuse(socket, 404, 'Not Found');
    if (!access.authorised(req, url)) {
      log.warn({ remote: req.socket.remoteAddress }, 'WebSocket refused: missing or wrong bearer token');
      return refuse(socket, 401, 'Unauthorized', 'WWW-Authenticate: Bearer realm="stegostream"\r\n');
    }
    if (!access.originAllowed(req)) {
      log.warn({ origin: req.headers.origin }, 'WebSocket refused: cross-origin request');
      return refuse(socket, 403, 'Forbidden');
    }
    hub.handleUpgrade(req, socket, head);
  });

  await listen(server, host, port, options.portHint);
  server.on('error', (err) => log.error({ err }, 'http server error'));
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  log.info({ host, port: bound }, 'http service listening');

  let closing: Promise<void> | undefined;
  return {
    host,
    port: bound,
    url: `${tls === undefined ? 'http' : 'https'}://${urlHost}:${bound}`,
    server,
    attachHub(h: WsHub) {
      hub = h;
      hubPending = false;
    },
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await hub?.close();
        const timer = setTimeout(() => server.closeAllConnections(), closeTimeoutMs);
        await serverClosed;
        clearTimeout(timer);
        log.info('http service closed');
      })();
      return closing;
    },
  };
}

/** The plain HTTP routes: the viewer, `/login`, `/metrics`, `/healthz`, `/readyz`, and `/ws` without an upgrade. */
function serviceRoutes(
  access: HttpAccess,
  registries: readonly Registry[],
  ready: () => Readiness,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const viewer = Buffer.from(VIEWER_HTML, 'utf8');
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/login') return access.login(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/index.html':
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader(
          'Content-Security-Policy',
          "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
        );
        send(res, 200, 'text/html; charset=utf-8', viewer);
        return;
      case '/metrics': {
        const texts = await Promise.all(registries.map((r) => r.metrics()));
        send(res, 200, registries[0]?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8', texts.join('\n'));
        return;
      }
      case '/healthz':
        sendJson(res, 200, { ok: true });
        return;
      case '/readyz': {
        const state = ready();
        sendJson(res, state.ready ? 200 : 503, state);
        return;
      }
      case '/ws':
        // A plain GET on the WebSocket path: say what it is.
        res.setHeader('Upgrade', 'websocket');
        send(res, 426, 'text/plain; charset=utf-8', 'this endpoint speaks WebSocket\n');
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  };
}

function readiness(ready: HttpServiceOptions['ready']): Readiness {
  if (ready === undefined) return { ready: false, reason: 'no pipeline attached' };
  try {
    return ready();
  } catch (err) {
    return { ready: false, reason: `readiness check failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Binds `host:port`; a failure is a ListenError that says how to pick another port. */
async function listen(server: Server | HttpsServer, host: string, port: number, portHint: string | undefined): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new ListenError(host, port, err.code ?? err.message, portHint ?? 'choose another host or port', err));
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
