// The command line: `plan`, `sync --once`, `serve`, `explain`. Exit codes: 0 done, 1 something
// failed (the output says what), 2 bad usage or bad config.
// Each command's module is loaded when the command runs, so that `--help` (and a command that
// needs no cloud SDK, no queue, no server) does not load them all.
import { Command, CommanderError, Option } from 'commander';
import { type CliIO, EXIT, reportError } from './io.ts';

/** How long a stopped `serve` may take to end by itself before it is ended. */
const SERVE_EXIT_GRACE_MS = 1000;

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
      const { runPlan } = await import('./plan-command.ts');
      code = await runPlan(opts, io);
    });

  program
    .command('sync')
    .description('resync every scope once and apply the changes directly (no Redis), then exit')
    .addOption(configOption())
    .requiredOption('--once', 'run one resync and exit (the only mode of this command)')
    .option('--force', 'let through deletes that the deletion guard holds back', false)
    .action(async (opts: { config?: string; force: boolean }) => {
      const { runSync } = await import('./sync-command.ts');
      code = await runSync(opts, io);
    });

  program
    .command('serve')
    .description('run the service: queue workers, periodic resync of every scope, webhooks, health and metrics')
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      const { runServe } = await import('./serve-command.ts');
      code = await runServe(opts, io);
      // A shutdown that had to drop its Redis connections (Redis away) can leave BullMQ retrying
      // them, which would keep the process alive until the kubelet kills it: it ends anyway, once
      // its last log lines are out. The timer does not hold a process that ends by itself.
      setTimeout(() => process.exit(code), SERVE_EXIT_GRACE_MS).unref();
    });

  program
    .command('explain')
    .description('say whether a VM is in the mesh, and if not, why')
    .argument('<instance>', 'provider:instance-id, for example aws:i-0abc123 or static:pg-1')
    .addOption(configOption())
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (instance: string, opts: { config?: string; output: 'text' | 'json' }) => {
      const { runExplain } = await import('./explain-command.ts');
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
