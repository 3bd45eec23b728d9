// The Dockerfile, read rather than built (no Docker daemon in the test environment): its stages,
// base image, user, the files it copies, and whether the production image holds every module
// `bin/vm-mesh-sync.js` loads at run time.
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './deploy-files.ts';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** The Dockerfile's stages and their instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): { stages: Stage[]; preamble: Instruction[] } {
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  let current = '';
  for (const line of lines) {
    if (/^\s*#/.test(line) && current === '') continue;
    if (/^\s*#/.test(line)) continue; // comment lines inside a continuation are skipped by Docker too
    const continued = /\\\s*$/.test(line);
    current += `${current ? ' ' : ''}${line.replace(/\\\s*$/, '').trim()}`;
    if (continued) continue;
    if (current.trim()) {
      const m = /^(\w+)\s+(.*)$/s.exec(current.trim());
      if (!m) throw new Error(`Dockerfile: cannot read "${current}"`);
      instructions.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim() });
    }
    current = '';
  }
  const stages: Stage[] = [];
  const preamble: Instruction[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile: cannot read FROM ${ins.args}`);
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else if (stages.length === 0) preamble.push(ins);
    else stages.at(-1)!.instructions.push(ins);
  }
  return { stages, preamble };
}

/** A COPY or ADD: its flags, sources and destination (JSON or plain form). */
function parseCopy(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest)) {
    flags[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  const parts: string[] = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, sources: parts.slice(0, -1), dest: parts.at(-1)! };
}

/** Docker's .dockerignore rules: the last matching pattern wins, a pattern matching a parent folder matches its files. */
function dockerignore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const ch = pattern[i]!;
        if (ch === '*' && pattern[i + 1] === '*') {
          i++;
          if (pattern[i + 1] === '/') {
            i++;
            re += '(?:.*/)?';
          } else re += '.*';
        } else if (ch === '*') re += '[^/]*';
        else if (ch === '?') re += '[^/]';
        else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (file: string) => {
    const parts = file.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (candidates.some((c) => rule.re.test(c))) excluded = !rule.negate;
    return excluded;
  };
}

/** The package a bare import specifier names (`@scope/name/sub` → `@scope/name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/**
 * Every repository file and package the process loads at run time, starting from `entry`.
 * Type-only imports are erased by Node's type stripping and are not followed. A relative import
 * of a file that does not exist (yet) is left to the typecheck.
 */
function runtimeGraph(entry: string): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file) || !existsSync(file)) continue;
    files.add(file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
    const specifiers: string[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
        specifiers.push(node.moduleSpecifier.text);
      } else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        specifiers.push(node.moduleSpecifier.text);
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteralLike(arg)) specifiers.push(arg.text);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    for (const s of specifiers) {
      if (s.startsWith('.')) queue.push(path.resolve(path.dirname(file), s));
      else if (!s.startsWith('node:') && !builtinModules.includes(s)) packages.set(packageOf(s), path.relative(ROOT, file));
    }
  }
  return { files, packages };
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const ignored = dockerignore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
const finalStage = dockerfile.stages.at(-1)!;
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }>;
};

function ops(stage: Stage, op: string): string[] {
  return stage.instructions.filter((i) => i.op === op).map((i) => i.args);
}

/** What the final stage puts under WORKDIR, as repository paths (`bin`, `package.json`, ...). */
function copiedSources(stage: Stage): string[] {
  return ops(stage, 'COPY')
    .map(parseCopy)
    .filter((c) => !c.flags.from)
    .flatMap((c) => c.sources.map((s) => path.posix.normalize(s).replace(/\/+$/, '')));
}

describe('Dockerfile', () => {
  it('has a deps stage and a runtime stage, both on node:24-slim', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    const names = new Set(dockerfile.stages.map((s) => s.name).filter(Boolean));
    for (const stage of dockerfile.stages) {
      if (!names.has(stage.from)) expect(stage.from).toBe('node:24-slim');
    }
    expect(finalStage.from).toBe('node:24-slim');
  });

  it('installs production dependencies exactly as locked, and nothing in the final stage', () => {
    const runs = dockerfile.stages.flatMap((s) => ops(s, 'RUN').map((r) => ({ stage: s, run: r })));
    const installs = runs.filter((r) => /\bnpm\s+(ci|install|i|add)\b/.test(r.run));
    expect(installs.length).toBe(1);
    expect(installs[0]!.run).toMatch(/\bnpm ci\b.*--omit=dev/);
    expect(installs[0]!.stage).not.toBe(finalStage);
    for (const run of ops(finalStage, 'RUN')) expect(run).not.toMatch(/\b(npm|yarn|pnpm|npx)\b/);
    const fromDeps = ops(finalStage, 'COPY')
      .map(parseCopy)
      .filter((c) => c.flags.from);
    expect(fromDeps.map((c) => c.flags.from)).toEqual([installs[0]!.stage.name]);
    expect(fromDeps[0]!.sources).toEqual(['/app/node_modules']);
    // What `npm ci` reads must be in the deps stage, and the lockfile must agree with package.json
    // (npm ci refuses otherwise).
    const depsCopies = ops(installs[0]!.stage, 'COPY').flatMap((c) => parseCopy(c).sources);
    expect(depsCopies).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', '.npmrc']));
    expect(lock.packages['']?.dependencies ?? {}).toEqual(pkg.dependencies ?? {});
    expect(lock.packages['']?.devDependencies ?? {}).toEqual(pkg.devDependencies ?? {});
  });

  it('runs as a non-root numeric user with NODE_ENV=production', () => {
    const users = ops(finalStage, 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!;
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(user.split(':')[0]).not.toBe('0');
    expect(user.split(':')[0]).toBe('1000'); // the Deployment's runAsUser
    expect(ops(finalStage, 'ENV').join(' ')).toMatch(/\bNODE_ENV=production\b/);
    // Written files would land on a read-only root filesystem: nothing may be made writable for the user.
    for (const c of ops(finalStage, 'COPY').map(parseCopy)) expect(c.flags.chown, JSON.stringify(c)).toBeUndefined();
  });

  it('starts `serve` with the cluster config path, and exposes 8080 (webhooks) and 8081 (admin)', () => {
    expect(ops(finalStage, 'ENTRYPOINT')).toEqual(['["node", "bin/vm-mesh-sync.js"]']);
    expect(JSON.parse(ops(finalStage, 'ENTRYPOINT')[0]!)).toEqual(['node', 'bin/vm-mesh-sync.js']);
    expect(JSON.parse(ops(finalStage, 'CMD').at(-1)!)).toEqual(['serve', '--config', '/etc/vm-mesh-sync/config.yaml']);
    expect(ops(finalStage, 'EXPOSE')).toEqual(['8080 8081']);
    expect(ops(finalStage, 'WORKDIR').at(-1)).toBe('/app');
  });

  it('copies sources that exist and that .dockerignore lets into the build context', () => {
    for (const stage of dockerfile.stages) {
      for (const c of ops(stage, 'COPY').map(parseCopy)) {
        if (c.flags.from) continue;
        for (const s of c.sources) {
          const source = path.posix.normalize(s).replace(/\/+$/, '');
          expect(existsSync(path.join(ROOT, source)), `COPY ${s}: missing`).toBe(true);
          expect(ignored(source), `COPY ${s}: excluded by .dockerignore`).toBe(false);
        }
      }
    }
    expect(copiedSources(finalStage)).toEqual(expect.arrayContaining(['package.json', 'bin', 'services', 'providers', 'config']));
  });

  it('keeps node_modules, tests and local files out of the build context', () => {
    for (const file of ['node_modules/yaml/package.json', 'test/global-setup.ts', 'services/planning/plan.test.ts', '.git/HEAD', 'coverage/index.html', 'Dockerfile', 'services/server/x.test-helper.ts']) {
      expect(ignored(file), file).toBe(true);
    }
  });

  it('holds every module bin/vm-mesh-sync.js loads, and only production packages', () => {
    const { files, packages } = runtimeGraph(path.join(ROOT, 'bin', 'vm-mesh-sync.js'));
    expect(files.size).toBeGreaterThan(5);
    const copied = copiedSources(finalStage);
    for (const file of files) {
      const relFile = path.relative(ROOT, file);
      expect(
        copied.some((c) => relFile === c || relFile.startsWith(`${c}/`)),
        `${relFile} is loaded at run time but not copied into the image`,
      ).toBe(true);
      expect(ignored(relFile), `${relFile} is loaded at run time but excluded by .dockerignore`).toBe(false);
    }
    expect(packages.size).toBeGreaterThan(0);
    for (const [name, from] of packages) {
      expect(pkg.dependencies?.[name], `${name} (imported by ${from}) must be in "dependencies": npm ci --omit=dev leaves it out`).toBeDefined();
      expect(lock.packages[`node_modules/${name}`]?.dev ?? false, `${name} is dev-only in package-lock.json`).toBe(false);
    }
  });

  it('has a package.json that makes bin/vm-mesh-sync.js an ES module', () => {
    expect(pkg.type as unknown).toBe('module');
    expect(copiedSources(finalStage)).toContain('package.json');
  });
});

describe('the .dockerignore reader', () => {
  // The checks above rely on it; these cases make sure it follows Docker's rules.
  it('lets the last matching rule win and applies folder rules to their files', () => {
    const match = dockerignore('*\n!src/\n**/*.test.ts\n!keep.test.ts\n');
    expect(match('README.md')).toBe(true);
    expect(match('src/a/b.ts')).toBe(false);
    expect(match('src/a/b.test.ts')).toBe(true);
    expect(match('keep.test.ts')).toBe(false);
    expect(match('lib/x.ts')).toBe(true);
  });
});
