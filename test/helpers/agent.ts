// `spindle agent` as a real process for the end-to-end tests: run from the sources (node with tsx's
// loader, one process, so a SIGKILL reaches the agent itself), its stderr kept for assertions and
// for the failure message of a test that times out.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { root } from "./server-process.js";

export interface AgentProcess {
  pid: number;
  child: ChildProcess;
  stateDir: string;
  /** Everything it wrote so far. */
  output(): string;
  /** Resolves with the first output line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started = new Set<AgentProcess>();

export function newStateDir() {
  return mkdtempSync(path.join(tmpdir(), "spindle-agent-test-"));
}

export function startAgent(options: { args: string[]; stateDir?: string; env?: Record<string, string> }): AgentProcess {
  const stateDir = options.stateDir ?? newStateDir();
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", "agent", "--state-dir", stateDir, ...options.args], {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const agent: AgentProcess = {
    pid: child.pid!,
    child,
    stateDir,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = output.split("\n").find((l) => pattern.test(l));
          if (line === undefined) return;
          cleanup();
          resolve(line);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`the agent did not print ${pattern} within ${timeoutMs} ms; it printed:\n${output.slice(-3000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  started.add(agent);
  void exited.then(() => started.delete(agent));
  return agent;
}

/** Kills every agent a test left running and removes their state folders. */
export async function stopAllAgents() {
  await Promise.all([...started].map((agent) => agent.stop("SIGKILL")));
}

export function removeStateDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

/** Pids of live processes whose command line is exactly `argv`. */
export function processesRunning(argv: string[]): number[] {
  const wanted = `${argv.join("\0")}\0`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8") !== wanted) continue;
      // A zombie has exited; only its parent has not reaped it yet.
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (state !== "Z") found.push(Number(entry));
    } catch {
      // Gone while being read.
    }
  }
  return found;
}

/** Polls `check` until it returns a value (not undefined/false), or fails after `timeoutMs` with `what`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
