// The report of a run: JSON for tools, and a Markdown table for people (it reads in a terminal and
// pastes into the README as it is).
import type { MachineInfo } from './machine.ts';
import { describeMachine } from './machine.ts';
import type { GoalVerdict } from './measure.ts';
import type { ScenarioResult } from './scenario-types.ts';

/** The outcome of one scenario: its result, or why there is none. */
export interface ScenarioReport {
  name: string;
  title: string;
  ok: boolean;
  durationMs: number;
  machine: MachineInfo;
  /** 1-minute load average when the scenario ended. */
  loadAverageAtEnd: number;
  result?: ScenarioResult;
  error?: string;
}

/** The whole report written to bench-report.json. */
export interface BenchReport {
  startedAt: string;
  durationMs: number;
  command: string;
  options: { quick: boolean; latencyMs: number; only: string[]; variants?: string[]; instances?: number };
  machine: MachineInfo;
  scenarios: ScenarioReport[];
  goals: Array<GoalVerdict & { scenario: string }>;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The report as Markdown: machine, one table of figures, one table of goals. */
export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const lines: string[] = [];
  lines.push(`### Benchmark (\`${report.command}\`)`);
  lines.push('');
  lines.push(
    `Machine: ${describeMachine(m)}; fake Kubernetes API latency ${report.options.latencyMs} ms per request; ` +
      `load average at start ${m.loadAverageAtStart.join(' / ')}. Run ${report.startedAt}, ${Math.round(report.durationMs / 1000)} s in all.`,
  );
  if (report.options.quick) lines.push('', '**Quick mode:** sizes are smaller than the goals assume; verdicts are for orientation only.');
  lines.push('', '| Scenario | Figure | Value |', '|---|---|---|');
  for (const s of report.scenarios) {
    if (!s.ok || !s.result) {
      lines.push(`| ${cell(s.title)} | **failed** | ${cell((s.error ?? 'no result').split('\n')[0] ?? '')} |`);
      continue;
    }
    s.result.rows.forEach((row, i) => {
      lines.push(`| ${i === 0 ? cell(s.title) : ''} | ${cell(row.figure)} | ${cell(row.value)} |`);
    });
  }
  lines.push('', '| Goal | Target | Measured | Verdict |', '|---|---|---|---|');
  for (const g of report.goals) {
    lines.push(`| ${cell(g.goal)} | ${cell(g.target)} | ${cell(g.measured)} | ${g.met ? '✅' : '❌'} ${cell(g.margin)} |`);
  }
  const notes = report.scenarios.flatMap((s) => s.result?.notes.map((n) => `- ${s.title}: ${n}`) ?? []);
  if (notes.length > 0) lines.push('', ...notes);
  const busy = report.scenarios.filter((s) => s.loadAverageAtEnd > m.cores * 1.5);
  if (busy.length > 0) {
    lines.push('', `Note: the machine was busy with other work during ${busy.map((s) => s.name).join(', ')} (1-minute load average above ${m.cores * 1.5}); those figures may be low.`);
  }
  return `${lines.join('\n')}\n`;
}
