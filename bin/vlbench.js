#!/usr/bin/env node
// The `vlbench` executable runs the compiled CLI (dist/, built by `npm run build`, which
// `prepare` runs on `npm ci` and before `npm pack`): no TypeScript loader at start.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write('vlbench: dist/ is missing (installed with scripts skipped?): run `npm run build` in the vlbench folder, or `npx tsx cli/main.ts` in a checkout\n');
  process.exitCode = 3;
}
