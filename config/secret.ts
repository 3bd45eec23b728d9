import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/**
 * A secret value in config: never inline in production, so it can name an environment variable
 * or a file (a mounted Kubernetes Secret). Inline strings are accepted for local trials.
 */
export const secretRef = z.union([
  z.string().min(1),
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
]);

/** A secret reference as written in config. */
export type SecretRef = z.infer<typeof secretRef>;

/** Reads a secret reference's value; throws a plain Error naming the variable or file (never the value). */
export function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof ref === 'string') return ref;
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') throw new Error(`environment variable ${ref.env} is not set`);
    return value;
  }
  try {
    return readFileSync(ref.file, 'utf8').trim();
  } catch (err) {
    throw new Error(`secret file ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** How long a secret read from a file is used before the file is read again. */
export const SECRET_FILE_MAX_AGE_MS = 5000;

/**
 * A secret used on every request (a webhook's key): a file is read without blocking the event
 * loop, at most once per `maxAgeMs`, so a rotated Kubernetes Secret (its mounted file changes in
 * place) takes effect within seconds and no restart is needed. Environment and inline values are
 * used as they are.
 */
export class SecretReader {
  readonly #ref: SecretRef;
  readonly #env: NodeJS.ProcessEnv;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #cached: { value: string; at: number } | undefined;
  #reading: Promise<string> | undefined;

  constructor(ref: SecretRef, env: NodeJS.ProcessEnv = process.env, options: { maxAgeMs?: number; now?: () => number } = {}) {
    this.#ref = ref;
    this.#env = env;
    this.#maxAgeMs = options.maxAgeMs ?? SECRET_FILE_MAX_AGE_MS;
    this.#now = options.now ?? Date.now;
  }

  /** The secret's value; throws a plain Error naming the variable or file (never the value). */
  async read(): Promise<string> {
    const ref = this.#ref;
    if (typeof ref === 'string' || 'env' in ref) return resolveSecret(ref, this.#env);
    const cached = this.#cached;
    if (cached && this.#now() - cached.at < this.#maxAgeMs) return cached.value;
    // Requests that arrive while the file is read wait for the same read.
    this.#reading ??= readFile(ref.file, 'utf8').then(
      (text) => {
        this.#reading = undefined;
        const value = text.trim();
        this.#cached = { value, at: this.#now() };
        return value;
      },
      (err: NodeJS.ErrnoException) => {
        this.#reading = undefined;
        this.#cached = undefined;
        throw new Error(`secret file ${ref.file} cannot be read (${err.code ?? 'error'})`);
      },
    );
    return this.#reading;
  }
}
