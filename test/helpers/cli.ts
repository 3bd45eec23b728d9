// Runs the command line in this process with captured output, as a user would run it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { stringify } from 'yaml';
import { main } from '../../services/cli/main.ts';

/** What a command printed and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `vm-mesh-sync <args>` with the given environment. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(args, { stdout, stderr, env: { PATH: process.env.PATH, HOME: '/nonexistent', ...env } });
  return { code, stdout: out, stderr: err };
}

/** A machine of a static inventory. */
export interface Machine {
  id: string;
  state?: string;
  region?: string;
  zone?: string;
  privateIPv4?: string | string[];
  publicIPv4?: string[];
  ipv6?: string[];
  tags?: Record<string, string>;
}

/** A temporary folder with a config file and an inventory that a test rewrites at will. */
export class Workspace {
  readonly dir: string;
  readonly configFile: string;
  readonly inventoryFile: string;

  constructor(config: Record<string, unknown> = {}) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'vms-test-'));
    this.configFile = path.join(this.dir, 'config.yaml');
    this.inventoryFile = path.join(this.dir, 'inventory.yaml');
    this.writeConfig(config);
    this.writeInventory([]);
  }

  /** Writes the config; a static provider `onprem` on the inventory is added unless `providers` is given. */
  writeConfig(config: Record<string, unknown>): void {
    const full = { providers: [{ type: 'static', name: 'onprem', inventory: this.inventoryFile }], ...config };
    writeFileSync(this.configFile, stringify(full));
  }

  /** Writes the inventory file. */
  writeInventory(machines: Machine[]): void {
    writeFileSync(this.inventoryFile, stringify({ machines }));
  }

  /** Writes raw inventory text (for malformed files). */
  writeInventoryText(text: string): void {
    writeFileSync(this.inventoryFile, text);
  }

  /** Removes the folder. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A running, tagged machine with a private address. */
export function meshMachine(id: string, ip: string, tags: Record<string, string> = {}): Machine {
  return {
    id,
    region: 'us-east-1',
    zone: 'us-east-1a',
    privateIPv4: ip,
    tags: { mesh: 'true', 'mesh-app': 'postgres', 'mesh-ports': 'postgres:5432', ...tags },
  };
}

/** True when `entries` are exactly the inventory's machines, each with the machine's private address. */
export function matchesInventory(entries: ReadonlyArray<{ metadata: { name: string }; spec: { address?: string } }>, inventory: Machine[]): boolean {
  const live = new Map(entries.map((e) => [e.metadata.name, e.spec.address]));
  return live.size === inventory.length && inventory.every((m) => live.get(`static-${m.id}`) === m.privateIPv4);
}
