// What every command shares: where it writes, its exit codes and how an error is printed.
import { isVmsError } from '../errors.ts';

/**
 * Exit codes: 0 done; 1 something failed; 2 bad command line or config; 3 (`sync --once`) done,
 * but the deletion guard held deletes back, which someone must look at (`--force`, or the cause).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, held: 3 } as const;

/** Where commands write; tests pass their own streams. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** Prints an error as `CODE: message` with its hint, and picks the exit code. */
export function reportError(err: unknown, io: Pick<CliIO, 'stderr'>): number {
  if (isVmsError(err)) {
    io.stderr.write(`${err.code}: ${err.message}\n  hint: ${err.hint}\n`);
    return err.code.startsWith('VMS_ERR_CONFIG') || err.code === 'VMS_ERR_USAGE' ? EXIT.usage : EXIT.failed;
  }
  io.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.failed;
}
