// The resident memory of another process, as the kernel counts it (Linux /proc), for bounds on
// memory growth of a child process under load.
import { readFileSync } from 'node:fs';

/** Resident set size of process `pid` in bytes; undefined where /proc is not available. */
export function residentBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}
