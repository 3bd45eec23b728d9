// pino JSON logs. Secrets never reach a log: credential-bearing fields are redacted by path, and
// connection strings are masked before they are logged.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths pino removes from every log line, wherever a caller puts them. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers["x-api-key"]',
];

/** The process logger, writing JSON lines to stderr so stdout stays for command output. */
export function createLogger(level: string = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { name: 'vm-mesh-sync' },
      redact: { paths: REDACT_PATHS, censor: '***' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as pino.DestinationStream,
  );
}

/** A logger that drops everything, for tests and quiet commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
