// A Spindle server as its own process, for the benchmarks that measure the process itself (start-up
// time, memory) and the agent's end-to-end tests (a server stopped and started again): compiled
// (`node dist/main.js`) or through tsx (`tsx src/main.ts`, how `npm start` ran before the build), on
// the embedded database or on PostgreSQL + Redis.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { freshPostgresDatabase } from "./server.js";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** How the server is run: the compiled build, `npm start` (its prestart check, then the build), or tsx. */
export type Runtime = "compiled" | "npm-start" | "tsx";

const commands: Record<Runtime, string[]> = {
  compiled: [process.execPath, "dist/main.js"],
  "npm-start": ["npm", "start", "--silent"],
  tsx: [path.join(root, "node_modules/.bin/tsx"), "src/main.ts"],
};

export const ADMIN = { email: "bench-admin@spindle.local", password: "bench-admin-password-1" };

/** Compiles dist/ when it is missing or older than src/ (what `npm start` does first). */
export function buildIfStale() {
  const result = spawnSync(process.execPath, ["scripts/build.mjs", "--if-stale"], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) throw new Error("the build failed");
}

/** Where a server keeps its data: a fresh data folder, and with DATABASE_URL a fresh database on that server. */
export interface Backend {
  kind: "embedded" | "postgres+redis";
  env: Record<string, string>;
  drop(): Promise<void>;
}

export async function freshBackend(): Promise<Backend> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "spindle-server-bench-"));
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  const base = {
    SPINDLE_DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(32).toString("base64url"),
    SPINDLE_ADMIN_EMAIL: ADMIN.email,
    SPINDLE_ADMIN_PASSWORD: ADMIN.password,
  };
  const { DATABASE_URL, REDIS_URL } = process.env;
  if (!DATABASE_URL) return { kind: "embedded", env: base, drop: async () => removeDir() };
  if (!REDIS_URL) throw new Error("set REDIS_URL with DATABASE_URL (the replicated configuration is PostgreSQL + Redis)");
  const database = await freshPostgresDatabase(DATABASE_URL);
  return {
    kind: "postgres+redis",
    env: { ...base, DATABASE_URL: database.url, REDIS_URL, SPINDLE_REDIS_KEY_PREFIX: `spindle-bench-${randomBytes(6).toString("hex")}:` },
    drop: async () => {
      await database.drop();
      removeDir();
    },
  };
}

export interface SpindleProcess {
  /** The process npm or tsx started to run the server (the spawned one itself when it runs node directly). */
  serverPid: number;
  child: ChildProcess;
  url: string;
  /** Milliseconds from spawn to the "Spindle is listening" log line, and to the first 200 from /health. */
  listeningMs: number;
  healthMs: number;
  /** With `inspect`: the server's V8 inspector (a full GC and the heap figures it knows). */
  inspector?: Inspector;
  stop(): Promise<void>;
}

export async function startSpindle(options: {
  runtime: Runtime;
  backend: Backend;
  env?: Record<string, string>;
  /** Opens the V8 inspector on a free port (compiled only): full GCs and heap figures from outside. */
  inspect?: boolean;
}): Promise<SpindleProcess> {
  const [command, ...args] = commands[options.runtime];
  if (options.inspect) {
    if (options.runtime !== "compiled") throw new Error("inspect works with the compiled runtime");
    args.unshift("--inspect=127.0.0.1:0");
  }
  const started = performance.now();
  const child = spawn(command!, args, {
    cwd: root,
    env: { ...process.env, NODE_ENV: "production", PORT: "0", LOG_LEVEL: "info", ...options.backend.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let output = "";
  let inspectorUrl: string | undefined;
  const listening = new Promise<{ url: string; ms: number }>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
      const line = output.split("\n").find((l) => l.includes('"Spindle is listening"'));
      if (line) resolve({ url: (JSON.parse(line) as { url: string }).url.replace(/\/graphql$/, ""), ms: performance.now() - started });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${output.slice(-2000)}`)));
  });
  const { url, ms: listeningMs } = await listening;
  // Keep draining the pipes: a full pipe would block the server's logger.
  child.stdout!.resume();
  child.stderr!.resume();
  let healthMs = 0;
  for (;;) {
    const res = await fetch(`${url}/health`).catch(() => null);
    if (res?.status === 200) {
      healthMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const serverPid = serverProcessOf(child.pid!);
  const inspector = inspectorUrl ? await openInspector(inspectorUrl) : undefined;
  return {
    serverPid,
    child,
    url,
    listeningMs,
    healthMs,
    inspector,
    async stop() {
      inspector?.close();
      // To the server itself: npm and tsx end when it does.
      const signal = (name: NodeJS.Signals) => {
        try {
          process.kill(serverPid, name);
        } catch {
          // Already gone.
        }
      };
      signal("SIGTERM");
      const timer = setTimeout(() => {
        signal("SIGKILL");
        child.kill("SIGKILL");
      }, 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The pid running the server: the deepest process from `pid` down whose command names the main
 * module (npm -> node dist/main.js; the tsx CLI -> node with tsx's loader -> esbuild, which is not it).
 */
function serverProcessOf(pid: number): number {
  const runsMain = (p: number) => {
    try {
      return /main\.(js|ts)\b/.test(readFileSync(`/proc/${p}/cmdline`, "utf8"));
    } catch {
      return false;
    }
  };
  for (const child of childrenOf(pid)) {
    const found = serverProcessOf(child);
    if (runsMain(found)) return found;
  }
  return pid;
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (field 2) is in parentheses and may hold spaces: the ppid follows the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // The process ended while being read.
    }
  }
  return found.sort((a, b) => a - b);
}

/** Resident memory of `pid` alone, and of it with all its descendants (npm and tsx's own processes), in bytes. */
export function rssOf(pid: number): { rss: number; tree: number } {
  const one = (p: number) => {
    try {
      const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1];
      return Number(kb ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  const tree = (p: number): number => one(p) + childrenOf(p).reduce((sum, c) => sum + tree(c), 0);
  return { rss: one(pid), tree: tree(pid) };
}

/** CPU time (user + system) `pid` has used, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Open file descriptors of `pid` and its limit. */
export function fdsOf(pid: number): { open: number; limit: number } {
  const limit = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))?.[1];
  return { open: readdirSync(`/proc/${pid}/fd`).length, limit: Number(limit) };
}

/** The V8 inspector protocol, only the calls the benchmarks need. */
export interface Inspector {
  /** A full, synchronous garbage collection in the server. */
  collectGarbage(): Promise<void>;
  /** The server's own `process.memoryUsage()`. */
  memoryUsage(): Promise<NodeJS.MemoryUsage>;
  /** Writes a heap snapshot (a full GC first) to `file`. */
  heapSnapshot(file: string): Promise<void>;
  close(): void;
}

async function openInspector(url: string): Promise<Inspector> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let nextId = 0;
  const pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  const listeners = new Set<(message: any) => void>();
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) waiter?.reject(new Error(message.error.message));
      else waiter?.resolve(message.result);
    } else {
      for (const listener of listeners) listener(message);
    }
  });
  const call = (method: string, params: object = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    async collectGarbage() {
      await call("HeapProfiler.collectGarbage");
    },
    async memoryUsage() {
      const { result } = await call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true });
      return JSON.parse(result.value);
    },
    async heapSnapshot(file) {
      const { createWriteStream } = await import("node:fs");
      const out = createWriteStream(file);
      const onChunk = (message: any) => {
        if (message.method === "HeapProfiler.addHeapSnapshotChunk") out.write(message.params.chunk);
      };
      listeners.add(onChunk);
      await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      listeners.delete(onChunk);
      await new Promise((resolve) => out.end(resolve));
    },
    close: () => socket.close(),
  };
}

/** Bytes as MB with one decimal. */
export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
