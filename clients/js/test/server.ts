// Starts a real lampyr server (one process, the echo and room plugins and a
// few host built-ins) on free loopback ports, from a throwaway config.
//   LAMPYR_BIN         the lampyr binary (default <repo>/build/bin/lampyr)
//   LAMPYR_PLUGIN_DIR  where lib<name>.so are (default <repo>/build/plugins)
// Every server started here is SIGKILLed when the test process exits, even
// when a test fails or throws, so nothing is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// .test-build/test/server.js -> the repository root
const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
export const LAMPYR_BIN = process.env.LAMPYR_BIN ?? join(REPO, 'build/bin/lampyr');
export const PLUGIN_DIR = process.env.LAMPYR_PLUGIN_DIR ?? join(REPO, 'build/plugins');

// Command ids of the test server.
export const Cmd = {
  ECHO: 1, // echo plugin
  SLEEP: 5, // built-in: replies with the body after <body> ms
  DECLINE: 6, // built-in: never replies
  HEARTBEAT: 7, // protocol.heartbeat_command
  JOIN: 100, // room plugin (plugins/room/README.md)
  LEAVE: 101,
  SAY: 102,
  WHO: 103,
  STATS: 104,
  PUSH_EVENT: 110,
  PUSH_SAY: 111,
} as const;

export interface ServerOptions {
  /** Merged into the config's "protocol" object. */
  protocol?: Record<string, unknown>;
  /** Extra keys of the server's own object (e.g. wsport). */
  server?: Record<string, unknown>;
  /** Merged into the config's "master" object (e.g. admin_token). */
  master?: Record<string, unknown>;
  /** Where a plugin is loaded from instead of PLUGIN_DIR (a copy a test replaces to reload it). */
  pluginPaths?: Record<string, string>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = new Socket();
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => {
      s.destroy();
      done(true);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LampyrServer {
  private child: ChildProcess | null = null;
  private readonly conf: string;
  private readonly output: string;

  private constructor(
    private readonly dir: string,
    readonly port: number,
    readonly extraPorts: Record<string, number>,
  ) {
    this.conf = join(dir, 'lampyr.json');
    this.output = join(dir, 'game.out');
  }

  /** Writes the config and starts the server; resolves once its netport accepts. */
  static async start(options: ServerOptions = {}, extraPortNames: string[] = []): Promise<LampyrServer> {
    for (const f of [LAMPYR_BIN, join(PLUGIN_DIR, 'libecho.so'), join(PLUGIN_DIR, 'libroom.so')])
      if (!existsSync(f)) throw new Error(`${f} is missing: build lampyr, echo and room first (or set LAMPYR_BIN / LAMPYR_PLUGIN_DIR)`);
    for (const path of Object.values(options.pluginPaths ?? {})) if (!existsSync(path)) throw new Error(`${path} is missing`);
    const dir = mkdtempSync(join(tmpdir(), 'lampyr-js-'));
    const extra: Record<string, number> = {};
    for (const name of extraPortNames) extra[name] = await freePort();
    const server = new LampyrServer(dir, await freePort(), extra);
    const config = {
      master: { insecure_dev: true, ...options.master },
      servers: {
        game: {
          netport: server.port,
          plugins: ['echo', 'room'],
          builtins: { sleep: Cmd.SLEEP, decline: Cmd.DECLINE },
          ...extra,
          ...options.server,
        },
      },
      plugins: {
        echo: { path: options.pluginPaths?.echo ?? join(PLUGIN_DIR, 'libecho.so'), config: { command: Cmd.ECHO } },
        room: { path: options.pluginPaths?.room ?? join(PLUGIN_DIR, 'libroom.so') },
      },
      protocol: { heartbeat_command: Cmd.HEARTBEAT, ...options.protocol },
    };
    writeFileSync(server.conf, JSON.stringify(config, null, 2));
    try {
      await server.launch();
    } catch (e) {
      await server.dispose();
      throw e;
    }
    return server;
  }

  /** Starts the process (again) on the same ports and config. */
  async launch(): Promise<void> {
    if (this.child) throw new Error('already running');
    const out = openSync(this.output, 'a');
    // Plugin copies are staged in this test's directory, not a shared one.
    const env = { ...process.env, LAMPYR_STAGE_DIR: join(this.dir, 'stage') };
    const child = spawn(LAMPYR_BIN, ['--conf', this.conf, '--server', 'game'], { stdio: ['ignore', out, out], env });
    closeSync(out);
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    for (let waited = 0; waited < 10000; waited += 20) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (await canConnect(this.port)) return;
      await sleep(20);
    }
    await this.stop();
    throw new Error(`lampyr did not come up on port ${this.port}:\n${this.log()}`);
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  /** Signals the process (SIGKILL: a crash, as far as clients can tell) and waits for it; SIGKILL after 5 s. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((done) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        done();
      });
      child.kill(signal);
    });
  }

  log(): string {
    try {
      return readFileSync(this.output, 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops the server (gracefully) and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
