import { readFileSync } from 'node:fs';
import { packagePath } from './package-root.ts';

/** The package version, read once from package.json so records and --version agree. */
export const VLBENCH_VERSION: string = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')).version;
