// One scenario in a process of its own (started by run.ts): a fresh heap for memory figures, and a
// crash or a hang that the runner can end without losing the other scenarios.
import { killTrackedChildren } from './children.ts';
import type { BenchOptions, ScenarioResult } from './scenario-types.ts';
import { SCENARIOS } from './scenarios/index.ts';

/** What a scenario process tells its runner at the end. */
export type ScenarioOutcome = { type: 'result'; result: ScenarioResult } | { type: 'error'; error: string };

// A signal must still run the exit hooks that kill the processes this scenario started.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    killTrackedChildren();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

async function main(): Promise<void> {
  const name = process.argv[2];
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) throw new Error(`unknown scenario ${String(name)}`);
  const options = JSON.parse(process.env.BENCH_OPTIONS ?? '{}') as BenchOptions;
  const result = await scenario.run(options);
  await send({ type: 'result', result });
}

function send(message: ScenarioOutcome): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) {
      process.stdout.write(`${JSON.stringify(message, null, 2)}\n`);
      resolve();
      return;
    }
    process.send(message, () => resolve());
  });
}

main().then(
  () => {
    killTrackedChildren();
    process.exit(0);
  },
  async (err: unknown) => {
    await send({ type: 'error', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    killTrackedChildren();
    process.exit(1);
  },
);
