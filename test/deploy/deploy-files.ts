// Reading deploy/: YAML files, kustomizations and `kubectl kustomize` output, for the tests of
// the manifests, the image and the compose file.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The deploy/ folder. */
export const DEPLOY = path.join(ROOT, 'deploy');

/** A Kubernetes object as parsed from YAML; tests read into it with their own casts. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<
  string,
  any
>;

/** Every file under `dir` whose name ends in .yaml or .yml, as absolute paths, sorted. */
export function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFiles(full));
    else if (/\.ya?ml$/.test(entry.name)) out.push(full);
  }
  return out.sort();
}

/** The documents of a (multi-document) YAML text; throws on the first syntax error, naming the file. */
export function parseYamlDocs(text: string, file: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  const out: unknown[] = [];
  for (const doc of docs) {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) throw new Error(`${path.relative(ROOT, file)}: ${problem.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** The non-empty documents of a YAML file. */
export function readYamlDocs(file: string): unknown[] {
  return parseYamlDocs(readFileSync(file, 'utf8'), file);
}

/** The one document of a YAML file. */
export function readYaml(file: string): any {
  const docs = readYamlDocs(file);
  if (docs.length !== 1) throw new Error(`${path.relative(ROOT, file)}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}

/** The kustomization file of a folder, or undefined. */
export function kustomizationFile(dir: string): string | undefined {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/** One path a kustomization refers to, with the field that names it. */
export interface KustomizationRef {
  field: string;
  /** As written. */
  ref: string;
  /** Resolved against the kustomization's folder. */
  target: string;
  /** Whether the field may name a folder (another kustomization) as well as a file. */
  mayBeDir: boolean;
}

/** Every local path a kustomization names: resources, components, patches and generator files. */
export function kustomizationRefs(file: string): KustomizationRef[] {
  const k = readYaml(file) as Record<string, any>;
  const dir = path.dirname(file);
  const refs: KustomizationRef[] = [];
  const add = (field: string, ref: string, mayBeDir: boolean) => refs.push({ field, ref, target: path.resolve(dir, ref), mayBeDir });
  for (const field of ['resources', 'bases', 'components'] as const) {
    for (const ref of (k[field] as string[] | undefined) ?? []) add(field, ref, true);
  }
  for (const field of ['patchesStrategicMerge', 'crds', 'configurations', 'transformers', 'generators', 'validators'] as const) {
    for (const ref of (k[field] as unknown[] | undefined) ?? []) if (typeof ref === 'string' && !ref.includes('\n')) add(field, ref, false);
  }
  for (const field of ['patches', 'patchesJson6902'] as const) {
    for (const p of (k[field] as Array<{ path?: string }> | undefined) ?? []) if (p.path) add(field, p.path, false);
  }
  for (const field of ['configMapGenerator', 'secretGenerator'] as const) {
    for (const g of (k[field] as Array<{ files?: string[]; envs?: string[]; env?: string }> | undefined) ?? []) {
      // `key=path` names the key in the generated object; the path is after the first `=`.
      for (const f of g.files ?? []) add(`${field}.files`, f.includes('=') ? f.slice(f.indexOf('=') + 1) : f, false);
      for (const e of [...(g.envs ?? []), ...(g.env ? [g.env] : [])]) add(`${field}.envs`, e, false);
    }
  }
  return refs;
}

/** Whether `target` is a folder. */
export function isDir(target: string): boolean {
  return existsSync(target) && statSync(target).isDirectory();
}

/** The path of kubectl, or undefined when it is not installed. */
export function findKubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat('/usr/bin', '/usr/local/bin')) {
    const file = path.join(dir, 'kubectl');
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

/** `kubectl kustomize <dir>` parsed into objects. */
export function kustomizeBuild(kubectl: string, dir: string): K8sObject[] {
  const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return parseYamlDocs(out, `kubectl kustomize ${path.relative(ROOT, dir)}`) as K8sObject[];
}

/** The objects of a kustomization's own resource files (not generated ones, not sub-kustomizations). */
export function resourceObjects(dir: string): K8sObject[] {
  const file = kustomizationFile(dir);
  if (!file) throw new Error(`${path.relative(ROOT, dir)} has no kustomization.yaml`);
  return kustomizationRefs(file)
    .filter((r) => r.field === 'resources' && !isDir(r.target))
    .flatMap((r) => readYamlDocs(r.target) as K8sObject[]);
}

/** The one object of a kind (and name, when given); throws when there is not exactly one. */
export function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** Whether a label selector's matchLabels select these labels. */
export function selects(matchLabels: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!matchLabels || Object.keys(matchLabels).length === 0) return false;
  return Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);
}
