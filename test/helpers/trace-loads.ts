// Preloaded with `node --import` by tests that check what a command loads: appends the URL of
// every module the process resolves to the file named by VMS_TRACE_LOADS.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.VMS_TRACE_LOADS;
if (out) {
  registerHooks({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      appendFileSync(out, `${resolved.url}\n`);
      return resolved;
    },
  });
}
