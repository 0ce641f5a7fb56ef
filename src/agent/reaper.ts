// Makes sure the agent's children never outlive it, even when the agent is killed with SIGKILL and
// runs no cleanup code at all. A watchdog process (src/agent/reaper-watchdog.ts) in its own session
// reads the process groups to watch from a pipe; the kernel closes that pipe whenever the agent dies,
// and the watchdog then stops every group still listed.
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const START_TIMEOUT_MS = 15_000;

export class Reaper {
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(private readonly watchdog: ChildProcess) {
    this.exit = new Promise((resolve) =>
      watchdog.once("exit", () => {
        this.exited = true;
        resolve();
      }),
    );
  }

  /** Starts the watchdog and resolves once it listens. It does not keep the agent's event loop alive. */
  static async start(): Promise<Reaper> {
    const [program, args] = watchdogCommand();
    const watchdog = spawn(program, args, {
      // Its own session and group: signals sent to the agent's terminal or group do not reach it.
      detached: true,
      stdio: ["pipe", "pipe", "ignore"],
    });
    // The watchdog gone (killed by hand) makes our writes fail with EPIPE: losing the safety net must
    // not also crash the agent.
    watchdog.stdin!.on("error", () => {});
    await waitUntilReady(watchdog);
    watchdog.stdout!.destroy();
    // The stdin pipe, idle between writes, holds nothing; the process handle would keep the agent running.
    watchdog.unref();
    return new Reaper(watchdog);
  }

  /** The watchdog's process id. */
  get pid(): number {
    return this.watchdog.pid!;
  }

  /** Stop the process group `pgid` if the agent dies before `untrack(pgid)`. */
  track(pgid: number): void {
    this.send("+", pgid);
  }

  untrack(pgid: number): void {
    this.send("-", pgid);
  }

  /** Ends the watchdog (which stops any group still tracked) and resolves once it has exited. */
  async close(): Promise<void> {
    if (this.exited) return;
    // Referenced again, so that the agent waits for the watchdog to finish.
    this.watchdog.ref();
    this.watchdog.stdin!.end();
    await this.exit;
  }

  private send(sign: "+" | "-", pgid: number): void {
    // kill(-0) and kill(-1) mean "my group" and "everyone": never hand those to the watchdog.
    if (!Number.isSafeInteger(pgid) || pgid <= 1) throw new RangeError(`Not a process group id: ${pgid}`);
    if (this.exited || this.watchdog.stdin!.writableEnded) return;
    this.watchdog.stdin!.write(`${sign}${pgid}\n`);
  }
}

/**
 * How to run the watchdog next to this file: compiled, dist/agent/reaper-watchdog.js with plain node;
 * from source (tsx, vitest), reaper-watchdog.ts with tsx's loader. The agent's own execArgv is not
 * reused: under vitest it lacks the loader, and flags such as --inspect would clash with the agent's.
 */
function watchdogCommand(): [string, string[]] {
  const fromSource = new URL(import.meta.url).pathname.endsWith(".ts");
  const script = fileURLToPath(new URL(fromSource ? "./reaper-watchdog.ts" : "./reaper-watchdog.js", import.meta.url));
  if (!fromSource) return [process.execPath, [script]];
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  return [process.execPath, ["--import", tsxLoader, script]];
}

function waitUntilReady(watchdog: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (failure: string | null) => {
      clearTimeout(timer);
      watchdog.off("error", onError).off("exit", onExit);
      lines.close();
      if (failure === null) return resolve();
      watchdog.kill("SIGKILL");
      reject(new Error(`The reaper's watchdog did not start: ${failure}`));
    };
    const onError = (error: Error) => settle(error.message);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => settle(`it exited (${signal ?? `code ${code}`})`);
    const timer = setTimeout(() => settle(`no answer within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
    const lines = createInterface({ input: watchdog.stdout! });
    lines.once("line", (line) => settle(line === "ready" ? null : `it said ${JSON.stringify(line)}`));
    watchdog.once("error", onError).once("exit", onExit);
  });
}
