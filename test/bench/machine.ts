// The machine a run measured, so that figures from different machines are never compared blindly.
import os from 'node:os';
import { Redis } from 'ioredis';
import { round } from './measure.ts';

/** What the report says about the machine. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  redis: string;
  os: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews figures. */
  loadAverageAtStart: number[];
}

/** Reads CPU, memory, Node and Redis versions. */
export async function machineInfo(redisUrl: string): Promise<MachineInfo> {
  const cpus = os.cpus();
  let redis = 'unknown';
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.info('server');
    redis = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
  } catch (err) {
    redis = `unreachable (${(err as Error).message})`;
  } finally {
    client.disconnect();
  }
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: round(os.totalmem() / 1024 ** 3),
    node: process.version,
    redis,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

/** One line for the table's heading. */
export function describeMachine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, Redis ${m.redis}, ${m.os}`;
}
