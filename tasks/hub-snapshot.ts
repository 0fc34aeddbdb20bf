import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { InputError } from '../core/errors.ts';

/**
 * A Hugging Face Hub dataset as it sits on disk, offline: what lmms-eval and `load_dataset` leave in
 * `~/.cache/huggingface/hub` (a `datasets--OWNER--NAME` folder: `refs/<ref>` holds a commit,
 * `snapshots/<commit>/…` the files, links into `blobs/<sha256>`), one `snapshots/<commit>` folder
 * of it, or a `snapshot_download(local_dir=…)` folder. Nothing is fetched: the files either are
 * there or the error says which revisions are.
 */
export interface HubSnapshot {
  /** The folder whose files are the dataset repository's files at `revision`. */
  root: string;
  /** "OWNER/NAME" where the folder says it (cache layout); null for a plain snapshot folder. */
  repoId: string | null;
  /** The commit the files are at, where known (cache layout, or --revision); null otherwise (a local_dir download's files may say it: localDownloadMetadata). */
  revision: string | null;
}

const CACHE_FOLDER = /^datasets--([^-][^]*?)--(.+)$/;
const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Whether `dir` looks like a Hub dataset: a cache repository folder, one of its snapshots, or a
 * folder with parquet files at the top, in a folder below it (data/, or a config's folder as
 * lmms-lab/GQA has them: testdev_balanced_instructions/…), or two below (the Hub's parquet
 * conversion: <config>/<split>/…). Official layouts hold JSON and images, never parquet.
 */
export async function isHubDatasetFolder(dir: string): Promise<boolean> {
  const folder = resolve(dir);
  if (CACHE_FOLDER.test(basename(folder))) return true;
  if (basename(dirname(folder)) === 'snapshots' && CACHE_FOLDER.test(basename(dirname(dirname(folder))))) return true;
  // Only folders are walked into: an official layout's images folder holds 100k files, and none is read.
  const look = async (place: string, depth: number): Promise<boolean> => {
    const entries = await readdir(place, { withFileTypes: true }).catch(() => []);
    if (entries.some((entry) => (entry.isFile() || entry.isSymbolicLink()) && entry.name.endsWith('.parquet'))) return true;
    if (depth === 0) return false;
    for (const entry of entries) if (entry.isDirectory() && !entry.name.startsWith('.') && (await look(join(place, entry.name), depth - 1))) return true;
    return false;
  };
  return look(folder, 2);
}

/** The snapshot `dir` stands for; `revision` picks one of a cache folder's snapshots (a ref name such as "main", or a commit). */
export async function resolveHubSnapshot(dir: string, revision?: string): Promise<HubSnapshot> {
  const folder = resolve(dir);
  if (!(await isFolder(folder))) throw new InputError('no such dataset folder', { file: dir });
  const cacheMatch = CACHE_FOLDER.exec(basename(folder));
  if (cacheMatch) return snapshotOfCacheFolder(folder, `${cacheMatch[1]}/${cacheMatch[2]}`, revision);

  const snapshotsFolder = dirname(folder);
  const repoMatch = basename(snapshotsFolder) === 'snapshots' ? CACHE_FOLDER.exec(basename(dirname(snapshotsFolder))) : null;
  if (repoMatch) {
    const commit = basename(folder);
    if (revision !== undefined && revision !== commit) {
      const fromRef = await readRef(dirname(snapshotsFolder), revision);
      if (fromRef !== commit) throw new InputError(`this snapshot is commit ${commit}, not the revision "${revision}" that was asked for (give the datasets--… folder to pick a revision)`, { file: dir, field: '--revision' });
    }
    return { root: folder, repoId: `${repoMatch[1]}/${repoMatch[2]}`, revision: commit };
  }
  return { root: folder, repoId: null, revision: revision ?? null };
}

async function snapshotOfCacheFolder(folder: string, repoId: string, revision: string | undefined): Promise<HubSnapshot> {
  const snapshots = (await listFolder(join(folder, 'snapshots'))).filter((name) => !name.startsWith('.'));
  const refs = await listRefs(folder);
  const available = () => `snapshots there: ${snapshots.join(', ') || 'none'}; refs: ${refs.map(([name, commit]) => `${name} → ${commit}`).join(', ') || 'none'}`;
  let commit: string | undefined;
  if (revision !== undefined) {
    commit = snapshots.includes(revision) ? revision : await readRef(folder, revision);
    if (commit === undefined) throw new InputError(`no snapshot or ref "${revision}" in this cache folder (${available()}); it cannot be downloaded offline`, { file: folder, field: '--revision' });
  } else {
    commit = await readRef(folder, 'main');
    if (commit === undefined) {
      if (snapshots.length !== 1) throw new InputError(`no refs/main, and ${snapshots.length} snapshots: name one with --revision (${available()})`, { file: folder, field: '--revision' });
      commit = snapshots[0];
    }
  }
  const root = join(folder, 'snapshots', commit);
  if (!(await isFolder(root))) throw new InputError(`the revision points at commit ${commit}, whose snapshot folder is missing (${available()})`, { file: root, field: '--revision' });
  return { root, repoId, revision: commit };
}

/** The commit a ref names (`refs/main`, `refs/convert/parquet`), or undefined. */
async function readRef(cacheFolder: string, ref: string): Promise<string | undefined> {
  if (ref.split('/').some((part) => part === '..' || part === '')) return undefined;
  try {
    const commit = (await readFile(join(cacheFolder, 'refs', ref), 'utf8')).trim();
    return COMMIT.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

async function listRefs(cacheFolder: string): Promise<[string, string][]> {
  const refs: [string, string][] = [];
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true }).catch(() => [])) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else {
        const name = relative(join(cacheFolder, 'refs'), path).split(sep).join('/');
        const commit = await readRef(cacheFolder, name);
        if (commit !== undefined) refs.push([name, commit]);
      }
    }
  };
  await walk(join(cacheFolder, 'refs'));
  return refs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * What `snapshot_download(local_dir=…)` (and `hf download --local-dir`) noted about a file it
 * downloaded: `<local_dir>/.cache/huggingface/download/<path>.metadata` holds the commit, the
 * etag (for an LFS file, the sha256 of its bytes) and when it was written. A file changed since
 * (modified later than that, with huggingface_hub's one second of slack) has no metadata.
 */
export async function localDownloadMetadata(snapshotRoot: string, file: string): Promise<{ commit: string; etag: string } | undefined> {
  const path = relative(snapshotRoot, file);
  try {
    const [commit, etag, timestamp] = (await readFile(join(snapshotRoot, '.cache', 'huggingface', 'download', `${path}.metadata`), 'utf8')).split('\n').map((line) => line.trim());
    const { mtimeMs } = await stat(file);
    if (!COMMIT.test(commit) || !(mtimeMs / 1000 - 1 <= Number(timestamp))) return undefined;
    return { commit, etag };
  } catch {
    return undefined;
  }
}

/**
 * The commit `files` of `snapshot` are at: the cache layout's, or for a plain folder the one every
 * file's download notes name (a --revision must then agree with them), or --revision alone; null
 * when nothing says it.
 */
export async function revisionOfFiles(snapshot: HubSnapshot, files: readonly string[]): Promise<string | null> {
  if (snapshot.repoId !== null) return snapshot.revision;
  const commits = new Set<string | undefined>();
  for (const file of files) commits.add((await localDownloadMetadata(snapshot.root, file))?.commit);
  const [commit] = commits;
  const noted = commits.size === 1 && commit !== undefined ? commit : null;
  if (noted !== null && snapshot.revision !== null && snapshot.revision !== noted) {
    throw new InputError(`these files were downloaded at commit ${noted} (.cache/huggingface/download), not at the revision "${snapshot.revision}" that was asked for`, { file: snapshot.root, field: '--revision' });
  }
  return snapshot.revision ?? noted;
}

/**
 * The sha256 of a file's bytes. A cache snapshot's files link to `blobs/<sha256>`, and a
 * `local_dir` download notes the etag; both are the hash Git LFS (and so the Hub) computed over
 * the same bytes: that is taken instead of reading gigabytes of images again. Anything else is hashed.
 */
export async function fileSha256(file: string, snapshotRoot: string): Promise<string> {
  const target = await realpath(file);
  const name = basename(target);
  if (basename(dirname(target)) === 'blobs' && SHA256.test(name)) return name;
  const noted = await localDownloadMetadata(snapshotRoot, file);
  if (noted !== undefined && SHA256.test(noted.etag)) return noted.etag;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(target)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A folder's entries, sorted; none when it cannot be read (a missing folder is one without files, for the callers that probe layouts). */
export async function listFolder(folder: string): Promise<string[]> {
  try {
    return (await readdir(folder)).sort();
  } catch {
    return [];
  }
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * What a split read from Hub parquet files is, for its fingerprint: the layout, the snapshot's
 * revision and each file's sha256 (paths relative to the snapshot). A JSON copy of the same
 * examples has other bytes, so another fingerprint; the repository's name is left out, so the
 * same files at the same commit are the same split in the cache or in a snapshot_download folder.
 */
export async function hubSplitSource(snapshot: HubSnapshot, files: readonly string[], layout: string): Promise<Buffer> {
  const revision = await revisionOfFiles(snapshot, files);
  const hashes: { path: string; sha256: string }[] = [];
  for (const file of files) hashes.push({ path: relative(snapshot.root, file).split(sep).join('/'), sha256: await fileSha256(file, snapshot.root) });
  return Buffer.from(JSON.stringify({ layout, revision, files: hashes }));
}
