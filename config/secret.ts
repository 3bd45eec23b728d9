import { readFileSync } from 'node:fs';
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
