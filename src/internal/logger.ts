import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** JSON logs on stderr (stdout stays for results); child loggers add `{ stream, stage }`. */
export function createLogger(level: string = process.env['LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ level, base: { app: 'stegostream' } }, pino.destination(2));
}
