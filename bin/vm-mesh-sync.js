#!/usr/bin/env node
// Entry point. Node 24 runs the TypeScript sources directly (type stripping), so an older Node
// is told what to do instead of failing on the first `.ts` import.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `vm-mesh-sync needs Node.js 24 or newer; this is ${process.version}.\n` +
      'Run it through npm (npm start, npm run vms -- <command> ...), which uses the Node 24 from devDependencies,\n' +
      'or install Node 24.\n',
  );
  process.exit(2);
}
const { main } = await import('../services/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
