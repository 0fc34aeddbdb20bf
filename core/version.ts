import { readFileSync } from 'node:fs';

/** The package version, read once from package.json so records and --version agree. */
export const VLBENCH_VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
