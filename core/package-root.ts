import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder of the vlbench package: where package.json, models/bundled/ and native/ lie.
 * Modules run from their sources (core/…) or compiled (dist/core/…), so a path relative to
 * one module's own file would differ between the two; this walks up to the first package.json.
 */
export const PACKAGE_ROOT: string = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(start: string): string {
  for (let folder = start; ; folder = dirname(folder)) {
    if (existsSync(join(folder, 'package.json'))) return folder;
    if (dirname(folder) === folder) throw new Error(`vlbench: no package.json above ${start}`);
  }
}

/** A path inside the vlbench package, e.g. packagePath('models', 'bundled'). */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
