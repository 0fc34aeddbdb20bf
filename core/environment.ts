import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { VLBENCH_VERSION } from './version.ts';
import { PACKAGE_ROOT } from './package-root.ts';

const require = createRequire(import.meta.url);

/** Versions that go into every run record, so a number can be traced to the code that made it. */
export interface SoftwareVersions {
  vlbench: string;
  node: string;
  tfjs: string;
  transformersJs: string;
  sharp: string;
  onnxruntime: string;
}

/** Reads a dependency's version from its package.json, wherever node would resolve it from
 *  (some packages, like sharp, do not export their package.json, so require.resolve of it fails). */
function installedVersion(pkg: string): string {
  for (const dir of require.resolve.paths(pkg) ?? []) {
    try {
      return JSON.parse(readFileSync(join(dir, pkg, 'package.json'), 'utf8')).version;
    } catch {
      // not in this node_modules folder: try the next one up
    }
  }
  return 'not installed';
}

export function softwareVersions(): SoftwareVersions {
  return {
    vlbench: VLBENCH_VERSION,
    node: process.versions.node,
    tfjs: installedVersion('@tensorflow/tfjs'),
    transformersJs: installedVersion('@huggingface/transformers'),
    sharp: installedVersion('sharp'),
    onnxruntime: installedVersion('onnxruntime-node'),
  };
}

/** The vlbench git commit when running from a checkout, else null. */
export function gitCommit(): string | null {
  try {
    const root = PACKAGE_ROOT;
    // Installed under a project's node_modules, git would answer with that project's commit.
    if (!existsSync(join(root, '.git'))) return null;
    return execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

export interface MachineDescription {
  cpu: string;
  cores: number;
  memoryGiB: number;
  gpus: string[];
  platform: string;
}

export function describeMachine(): MachineDescription {
  const cpus = os.cpus();
  let gpus: string[] = [];
  try {
    gpus = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 })
      .trim()
      .split('\n')
      .filter(Boolean);
  } catch {
    // no nvidia-smi: no NVIDIA GPU visible
  }
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    gpus,
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
  };
}
