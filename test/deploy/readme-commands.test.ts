// The README's first commands are what CI runs: `.ci/run` calls each of them exactly as written,
// so that the commands a newcomer types are the ones that are tested on every change.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const CI = readFileSync(fileURLToPath(new URL('../../.ci/run', import.meta.url)), 'utf8');

/** The commands of the README's first `sh` block, without their comments. */
function firstCommands(markdown: string): string[] {
  const block = /```sh\n([\s\S]*?)```/.exec(markdown)?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe("the README's two commands", () => {
  it('are run by .ci/run exactly as written', () => {
    const commands = firstCommands(README);
    expect(commands).toEqual(['npm ci && npm start', 'npm test']);
    // A line runs the command as written, alone or with `|| exit 1` (set -e does not stop inside an && list).
    const ciCommands = CI.split('\n').map((line) => line.trim().replace(/\s*\|\|\s*exit 1$/, ''));
    for (const command of commands) expect(ciCommands).toContain(command);
  });

  it('install on any Node that runs npm: nothing makes npm refuse an older one', () => {
    const npmrc = readFileSync(fileURLToPath(new URL('../../.npmrc', import.meta.url)), 'utf8');
    expect(npmrc).not.toMatch(/^\s*engine-strict\s*=\s*true/m);
  });
});
