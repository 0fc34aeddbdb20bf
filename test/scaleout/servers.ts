// Real PostgreSQL and Redis servers for the scale-out tests: each in a temporary folder, on a
// free loopback port, stopped when the test file is done. PostgreSQL refuses to run as root,
// so under root it runs as the `postgres` user (runuser), in a folder that user owns.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

function postgresBinaries(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((name) => existsSync(join(root, name, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : null;
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, binary)));
}

/** Why the servers cannot be started here, as one line saying what to install; null when they can. */
export function missingServers(): string | null {
  const missing: string[] = [];
  if (!postgresBinaries()) missing.push('postgresql');
  if (!onPath('redis-server')) missing.push('redis-server');
  if (isRoot && !onPath('runuser')) missing.push('util-linux (runuser)');
  return missing.length ? `needs ${missing.join(' and ')}: apt-get install -y ${missing.map((m) => m.split(' ')[0]).join(' ')}` : null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface PostgresServer {
  port: number;
  /** A new, empty database on this server, as a postgres:// URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinaries();
  if (!bin) throw new Error('PostgreSQL is not installed');
  const folder = mkdtempSync(join(tmpdir(), 'vlbench-pg-'));
  const dataDir = join(folder, 'data');
  const asServerUser = (command: string, args: string[]) => (isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]) as [string, string[]];
  if (isRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(folder, Number(stdout.trim()), Number(gid.trim()));
  }
  await run(...asServerUser(join(bin, 'initdb'), ['-D', dataDir, '-U', 'vlbench', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']));
  // A port found free can be taken before the server binds it (by another test file's client
  // connection: outgoing connections draw from the same ephemeral range), so a start that
  // fails with "Address already in use" tries another port.
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    // fsync off: the data is thrown away with the folder, and it halves the time of every commit.
    const options = `-p ${port} -k ${folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    const log = join(folder, `server-${attempt}.log`);
    try {
      await run(...asServerUser(join(bin, 'pg_ctl'), ['-D', dataDir, '-l', log, '-o', options, '-w', '-t', '60', 'start']));
      break;
    } catch (error) {
      const taken = existsSync(log) && readFileSync(log, 'utf8').includes('Address already in use');
      if (!taken || attempt === 5) throw error;
    }
  }
  const admin = `postgres://vlbench@127.0.0.1:${port}/postgres`;
  return {
    port,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return `postgres://vlbench@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      await run(...asServerUser(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'])).catch(() => undefined);
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server: everything in it is lost (it runs without persistence). */
  stop(): Promise<void>;
  /** Starts a new, empty server on the same port (as after a restart without persistence). */
  restart(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const folder = mkdtempSync(join(tmpdir(), 'vlbench-redis-'));
  let port = 0;
  let child: ChildProcess | null = null;
  /** Starts redis-server on `port`; false when it exited before answering (its port was taken meanwhile). */
  const startOn = async (): Promise<boolean> => {
    const current = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', folder], { stdio: 'ignore' });
    child = current;
    const exited = new Promise<false>((resolve) => current.once('exit', () => resolve(false)));
    return Promise.race([waitForPort(port, 20_000, () => current.exitCode !== null).then(() => current.exitCode === null), exited]);
  };
  const start = async () => {
    if (!(await startOn())) throw new Error(`redis-server could not start again on port ${port}`);
  };
  // As for PostgreSQL: a port found free can be taken before redis-server binds it.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    if (await startOn()) break;
    if (attempt === 5) throw new Error(`redis-server exited before answering, on 5 free ports in a row`);
  }
  const stop = async () => {
    const current = child;
    child = null;
    if (!current || current.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      current.once('exit', () => resolve());
      current.kill('SIGKILL');
    });
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await stop();
    },
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/** Waits until redis answers PING on `port`; returns early (quietly) once `gaveUp` says the server is gone. */
async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gaveUp()) return;
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1', () => {
        socket.write('PING\r\n');
        socket.once('data', (data) => {
          socket.destroy();
          resolve(data.toString().startsWith('+PONG'));
        });
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
