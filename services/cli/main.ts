// The command line: `plan`, `sync --once`, `serve`, `explain`. Exit codes: 0 done, 1 something
// failed (the output says what), 2 bad usage or bad config.
import { Command, CommanderError, Option } from 'commander';
import { isVmsError } from '../errors.ts';
import { runPlan } from './plan-command.ts';
import { runSync } from './sync-command.ts';
import { runServe } from './serve-command.ts';
import { runExplain } from './explain-command.ts';

/** Exit codes of every command. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Where commands write; tests pass their own streams. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** Runs the command line and resolves to the process exit code. */
export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('vm-mesh-sync')
    .description('Brings cloud virtual machines into an Istio service mesh as WorkloadEntries.')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError('(run vm-mesh-sync --help for usage)');

  const configOption = () => new Option('-c, --config <file>', 'config file (default: $VMS_CONFIG)');

  program
    .command('plan')
    .description('print what would change, with every skipped instance and why; needs neither Redis nor a cluster')
    .addOption(configOption())
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json', 'diff']).default('yaml'))
    .option('--force', 'show deletes that the deletion guard would hold back as going through', false)
    .option('--no-cluster', 'plan against an empty cluster even when one is reachable')
    .action(async (opts: { config?: string; output: 'yaml' | 'json' | 'diff'; force: boolean; cluster: boolean }) => {
      code = await runPlan(opts, io);
    });

  program
    .command('sync')
    .description('resync every scope once and apply the changes directly (no Redis), then exit')
    .addOption(configOption())
    .requiredOption('--once', 'run one resync and exit (the only mode of this command)')
    .option('--force', 'let through deletes that the deletion guard holds back', false)
    .action(async (opts: { config?: string; force: boolean }) => {
      code = await runSync(opts, io);
    });

  program
    .command('serve')
    .description('run the service: queue workers, periodic resync of every scope, webhooks, health and metrics')
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      code = await runServe(opts, io);
    });

  program
    .command('explain')
    .description('say whether a VM is in the mesh, and if not, why')
    .argument('<instance>', 'provider:instance-id, for example aws:i-0abc123 or static:pg-1')
    .addOption(configOption())
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (instance: string, opts: { config?: string; output: 'text' | 'json' }) => {
      code = await runExplain(instance, opts, io);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(err, io);
  }
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
