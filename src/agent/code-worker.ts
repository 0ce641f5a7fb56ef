// Runs one CODE worker (an AiSpinner block's Python code) in a child Python process through the
// harness next to this module (python/spindle_harness.py, which documents the protocol). The code is
// written to a file in the work directory; the harness reports ready, ticks, errors and ctx.log lines
// on fd 3 and takes new settings on stdin; what the code prints arrives as INFO (stdout) and ERROR
// (stderr) lines. Stopping is the Spawn contract's: TERM to the process group, which the harness
// turns into a prompt, clean stop (teardown(ctx), exit 0), then KILL after the grace period.
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { ExitStatus, Spawn, Usage } from "./process.types.js";

export interface CodeWorkerSpec {
  id: string;
  name: string;
  revision: number;
  code: string;
  tickIntervalSeconds: number;
  settings: Record<string, unknown>;
  connectedBlocks: Record<string, unknown>;
  env: Record<string, string>;
}

export type CodeWorkerLogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";
export type CodeWorkerPhase = "setup" | "tick";

export interface CodeWorkerEvents {
  /** setup(ctx) succeeded (or the code has none): the first tick follows. */
  onReady(): void;
  /** A tick returned (ok), or setup or a tick raised (the harness retries setup and goes on ticking). */
  onTick(ok: boolean, error?: { message: string; traceback: string; phase: CodeWorkerPhase }): void;
  onLog(level: CodeWorkerLogLevel, message: string, stream: "ctx" | "stdout" | "stderr"): void;
  /** The process ended (crash or stop), after its last line was delivered. */
  onExit(status: ExitStatus): void;
}

export interface CodeWorkerSettings {
  tickIntervalSeconds: number;
  settings: Record<string, unknown>;
  connectedBlocks: Record<string, unknown>;
}

export interface CodeWorker {
  /** Applied by the running code from its next wait on, without a restart. */
  updateSettings(settings: CodeWorkerSettings): void;
  stop(graceMs: number): Promise<ExitStatus>;
  usage(): Promise<Usage | null>;
  readonly exited: Promise<ExitStatus>;
}

/** The harness's exit code when the code cannot run as given (no tick(ctx), a syntax error, an import that fails). */
export const HARNESS_EXIT_UNRUNNABLE = 2;

/** The agent's variables a worker inherits; everything else it gets from its own `env`. */
const INHERITED_VARIABLES = ["PATH", "HOME", "LANG"] as const;

const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"] as const satisfies readonly CodeWorkerLogLevel[];
const harnessMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready") }),
  z.object({ type: z.literal("tick"), ok: z.literal(true) }),
  z.object({ type: z.literal("error"), phase: z.enum(["setup", "tick"]), message: z.string(), traceback: z.string() }),
  z.object({ type: z.literal("log"), level: z.enum(LEVELS), message: z.string() }),
]);

/**
 * The harness: next to this module both under tsx (src/agent/python/) and compiled (dist/agent/python/,
 * which the build copies, as tsc does not).
 */
export function harnessPath(): string {
  return fileURLToPath(new URL("./python/spindle_harness.py", import.meta.url));
}

export async function startCodeWorker(
  spec: CodeWorkerSpec,
  deps: { spawn: Spawn; python: string; workDir: string },
  events: CodeWorkerEvents,
): Promise<CodeWorker> {
  const codeFile = await writeCode(spec, deps.workDir);
  const child = deps.spawn({
    command: deps.python,
    args: ["-u", harnessPath()],
    cwd: deps.workDir,
    env: childEnv(spec, codeFile),
    stdin: "pipe",
    control: true,
    onLine: (stream, line) => events.onLog(stream === "stdout" ? "INFO" : "ERROR", line, stream),
    onControl: (line) => deliver(line, events),
  });
  // Whatever Spawn it is: a write to a child that just exited must not become an uncaught EPIPE.
  child.stdin?.on("error", () => {});
  void child.exited.then((status) => events.onExit(status));
  return {
    exited: child.exited,
    updateSettings(settings) {
      if (!child.stdin?.writable) return;
      child.stdin.write(`${JSON.stringify({ type: "settings", ...harnessSettings(settings) })}\n`);
    },
    stop: (graceMs) => child.stop(graceMs),
    usage: () => child.usage(),
  };
}

/** The code, in a file of its own per worker and revision, readable by this user only (it may hold secrets). */
async function writeCode(spec: CodeWorkerSpec, workDir: string): Promise<string> {
  await mkdir(workDir, { recursive: true });
  const file = path.join(workDir, `code-${spec.id.replace(/[^\w.-]/g, "_")}-r${spec.revision}.py`);
  await writeFile(file, spec.code, { mode: 0o600 });
  // `mode` only applies when the file is created; a restart of the same revision rewrites it.
  await chmod(file, 0o600);
  return file;
}

function childEnv(spec: CodeWorkerSpec, codeFile: string): Record<string, string> {
  const inherited = INHERITED_VARIABLES.flatMap((name) => {
    const value = process.env[name];
    return value === undefined ? [] : [[name, value] as const];
  });
  return {
    ...Object.fromEntries(inherited),
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    ...spec.env,
    SPINDLE_CODE_FILE: codeFile,
    SPINDLE_WORKER: JSON.stringify({ id: spec.id, name: spec.name, revision: spec.revision, ...harnessSettings(spec) }),
  };
}

/** The harness's (AiSpinner's) names for the settings. */
function harnessSettings(settings: CodeWorkerSettings) {
  return {
    tick_interval_seconds: settings.tickIntervalSeconds,
    settings: settings.settings,
    connected_blocks: settings.connectedBlocks,
  };
}

function deliver(line: string, events: CodeWorkerEvents): void {
  const parsed = harnessMessage.safeParse(parseJson(line));
  if (!parsed.success) {
    // The code can write to fd 3 too: whatever it wrote is shown, never fatal.
    events.onLog("WARN", `[spindle agent] not a harness message on fd 3: ${line}`, "ctx");
    return;
  }
  const message = parsed.data;
  switch (message.type) {
    case "ready":
      return events.onReady();
    case "tick":
      return events.onTick(true);
    case "error":
      return events.onTick(false, { message: message.message, traceback: message.traceback, phase: message.phase });
    case "log":
      return events.onLog(message.level, message.message, "ctx");
  }
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
