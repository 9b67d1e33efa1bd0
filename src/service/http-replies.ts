/** Small HTTP reply helpers shared by the service's routes. */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.setHeader('Cache-Control', 'no-store');
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
}

/** Answers an upgrade request on the raw socket and closes it. */
export function refuse(socket: Duplex, status: number, text: string, extraHeaders = ''): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\n${extraHeaders}Connection: close\r\nContent-Length: 0\r\n\r\n`);
}
