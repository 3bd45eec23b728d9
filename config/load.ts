// Reads the config file once at start: file, then environment overrides, then the schema.
// Every failure is a VmsError whose message names the key path and what is wrong.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { VmsError } from '../services/errors.ts';
import { type Config, configSchema } from './schema.ts';

/** Environment variables that override config keys (connection strings and the like). */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: string[]; parse?: (v: string) => unknown }> = [
  { env: 'REDIS_URL', path: ['redis', 'url'] },
  { env: 'VMS_REDIS_PREFIX', path: ['redis', 'prefix'] },
  { env: 'VMS_OWNER_ID', path: ['ownerId'] },
  { env: 'VMS_POLICY', path: ['policy'] },
  { env: 'VMS_LOG_LEVEL', path: ['log', 'level'] },
  { env: 'VMS_PORT', path: ['server', 'port'], parse: Number },
  { env: 'VMS_ADMIN_PORT', path: ['server', 'adminPort'], parse: Number },
  // For the mesh-services-off kustomize component, which cannot edit the mounted config file.
  { env: 'VMS_SERVICES_KIND', path: ['services', 'kind'] },
  { env: 'VMS_WORKLOAD_GROUPS', path: ['services', 'workloadGroups'], parse: (v) => (v === 'true' ? true : v === 'false' ? false : v) },
];

/** Where the config file is: `--config`, else $VMS_CONFIG. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const file = flag ?? env.VMS_CONFIG;
  if (!file) throw new VmsError('VMS_ERR_CONFIG_NOT_FOUND', 'no config file given: pass --config FILE or set VMS_CONFIG');
  return file;
}

/** Loads, overrides and validates the config file; the result is frozen. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new VmsError('VMS_ERR_CONFIG_NOT_FOUND', `config file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const raw = parseConfigText(text, file);
  applyEnvOverrides(raw, env);
  const config = parseConfig(raw, file);
  resolvePaths(config, path.dirname(path.resolve(file)));
  return deepFreeze(config);
}

/** Parses YAML or JSON text; a syntax error names the line and column. */
export function parseConfigText(text: string, file: string): Record<string, unknown> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const where = first.linePos?.[0] ? `${file}:${first.linePos[0].line}:${first.linePos[0].col}` : file;
    throw new VmsError('VMS_ERR_CONFIG_PARSE', `${where}: ${first.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // Aliases are resolved only here: an unknown anchor or an alias bomb throws a plain error.
    throw new VmsError('VMS_ERR_CONFIG_PARSE', `${file}: ${(err as Error).message}; fix the aliases (*name) of the file`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new VmsError('VMS_ERR_CONFIG_INVALID', `${file}: the top level must be a mapping of keys, not ${Array.isArray(value) ? 'a list' : typeof value}`);
  }
  return value as Record<string, unknown>;
}

/** Validates a parsed config against the schema; all problems are listed, each with its key path. */
export function parseConfig(raw: unknown, file = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${formatPath(issue.path)}: ${describeIssue(issue)}`);
    throw new VmsError('VMS_ERR_CONFIG_INVALID', `${file} is not valid:\n${lines.join('\n')}`, {
      issues: result.error.issues.map((i) => ({ path: formatPath(i.path), message: describeIssue(i) })),
    });
  }
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
    return 'unknown provider type (expected one of the provider types this version knows)';
  }
  return issue.message;
}

function formatPath(p: ReadonlyArray<PropertyKey>): string {
  if (p.length === 0) return '(top level)';
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const o of ENV_OVERRIDES) {
    const value = env[o.env];
    if (value === undefined || value === '') continue;
    const parsed = o.parse ? o.parse(value) : value;
    if (typeof parsed === 'number' && Number.isNaN(parsed)) {
      throw new VmsError('VMS_ERR_CONFIG_ENV', `${o.env}: "${value}" is not a number`);
    }
    let node = raw;
    for (const key of o.path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null) node[key] = {};
      else if (typeof next !== 'object') throw new VmsError('VMS_ERR_CONFIG_INVALID', `${o.path.join('.')}: ${key} must be a mapping`);
      node = node[key] as Record<string, unknown>;
    }
    node[o.path.at(-1)!] = parsed;
  }
}

function resolvePaths(config: Config, base: string): void {
  for (const p of config.providers) {
    if (p.type === 'static') p.inventory = path.resolve(base, p.inventory);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
