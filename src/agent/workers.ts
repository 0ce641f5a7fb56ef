// Keeps the machine's workers as the server wants them: `reconcile` gets the assigned workers
// (DEPLOYING or RUNNING, each at a revision) and starts what is missing, stops what is no longer
// assigned, swaps a worker whose revision changed (redeploy, auto-heal) and hands new settings to a
// running CODE worker without restarting it.
//
// - CODE workers run the block's Python code in the harness (code-worker.ts): ready -> RUNNING,
//   ticks and errors are counted and reported every second with CPU and memory; the server decides
//   when the errors are too many (FAILED, and with auto-heal a new revision comes back to run).
// - CONTAINER workers run `image` (+ `command`) through the machine's container runtime, or only
//   `command` as a process. One that needs a runtime the machine lacks is reported FAILED with that
//   reason. Up for a second -> RUNNING; exiting -> FAILED with its exit status.
import {
  AgentReportWorkerStatusDocument,
  AgentReportWorkerTicksDocument,
  type AgentWorkerFragment,
  type ReportedWorkerStatus,
} from "../generated/agent-graphql.js";
import { describe, Refused, Unreachable, type AgentClient } from "./client.js";
import { startCodeWorker, type CodeWorker } from "./code-worker.js";
import { removeContainer, runtimeCommand, type ContainerRuntime } from "./containers.js";
import type { AgentLog } from "./log.js";
import type { LogShipper } from "./logs.js";
import type { ExitStatus, Spawn, Usage } from "./process.types.js";
import { stringEnv } from "./tasks.js";

export type AgentWorker = AgentWorkerFragment;

const REPORT_EVERY_MS = 1_000;
/** CPU and memory alone (no ticks or errors to report) go out this often. */
const USAGE_EVERY_MS = 10_000;
/** A process worker alive this long has come up. */
const UP_AFTER_MS = 1_000;

export interface WorkerSupervisorDeps {
  client: AgentClient;
  logs: LogShipper;
  spawn: Spawn;
  log: AgentLog;
  workDir: string;
  python: string | null;
  containerRuntime: ContainerRuntime | null;
  graceMs: number;
}

interface Running {
  worker: AgentWorker;
  settings: string;
  handle: { stop(graceMs: number): Promise<ExitStatus>; usage(): Promise<Usage | null>; updateSettings?: CodeWorker["updateSettings"] } | null;
  /** What was last reported for this revision (a report is repeated until it lands). */
  reported?: ReportedWorkerStatus;
  /** The worker's updatedAt (server time) after that report: a DEPLOYING newer than it is a new run. */
  reportedAt?: string;
  wanted?: { status: ReportedWorkerStatus; reason?: string };
  ticks: number;
  errors: number;
  usageReportedAt: number;
  stopping: boolean;
  /** The server no longer takes reports for this revision. */
  stale: boolean;
}

export class WorkerSupervisor {
  private readonly running = new Map<string, Running>();
  /** The latest assignment, by worker id. */
  private wanted = new Map<string, AgentWorker>();
  private readonly timer: NodeJS.Timeout;
  private reporting = false;

  constructor(private readonly deps: WorkerSupervisorDeps) {
    this.timer = setInterval(() => void this.reportAll(), REPORT_EVERY_MS);
    this.timer.unref();
  }

  get size() {
    return this.running.size;
  }

  /** Makes what runs match `desired` (the server's assigned workers). */
  reconcile(desired: readonly AgentWorker[]) {
    this.wanted = new Map(desired.map((worker) => [worker.id, worker]));
    for (const [id, run] of this.running) {
      const next = this.wanted.get(id);
      if (!next) void this.stop(run, "no longer assigned to this machine");
      else if (next.revision !== run.worker.revision) void this.swap(run, `revision ${next.revision} replaces ${run.worker.revision}`);
      else if (isNewRun(next, run.reportedAt)) void this.swap(run, `a new run (${next.status} again after its report)`);
      else if (settingsOf(next) !== run.settings) this.applySettings(run, next);
    }
    for (const worker of desired) if (!this.running.has(worker.id)) void this.start(worker);
  }

  /** Stops the run, then starts what the server wants by then (a later snapshot may want nothing, or a newer revision). */
  private async swap(run: Running, why: string) {
    await this.stop(run, why);
    const latest = this.wanted.get(run.worker.id);
    if (latest) await this.start(latest);
  }

  /** Stops every worker (agent shutdown). */
  async stopAll() {
    clearInterval(this.timer);
    await Promise.all([...this.running.values()].map((run) => this.stop(run, "the agent is stopping")));
    await this.reportAll();
  }

  private source(worker: AgentWorker) {
    return { type: "WORKER" as const, id: worker.id };
  }

  private async start(worker: AgentWorker) {
    if (this.running.has(worker.id)) return;
    const run: Running = { worker, settings: settingsOf(worker), handle: null, ticks: 0, errors: 0, usageReportedAt: 0, stopping: false, stale: false };
    this.running.set(worker.id, run);
    this.deps.log.info(`worker ${worker.name} (${worker.id}) revision ${worker.revision}: starting`);
    try {
      run.handle = worker.kind === "CODE" ? await this.startCode(run) : await this.startContainer(run);
      // Stopped while it was starting: the stop found no handle to stop.
      if (run.stopping) await run.handle?.stop(this.deps.graceMs);
    } catch (error) {
      this.fail(run, `could not start: ${describe(error)}`);
    }
  }

  private async startCode(run: Running) {
    const { worker } = run;
    if (!worker.code) return this.fail(run, "the worker has no code"), null;
    if (!this.deps.python) return this.fail(run, "this machine has no Python (python3 or python on PATH) to run CODE workers"), null;
    return startCodeWorker(
      {
        id: worker.id,
        name: worker.name,
        revision: worker.revision,
        code: worker.code,
        tickIntervalSeconds: worker.tickIntervalSeconds,
        settings: workerSettings(worker),
        connectedBlocks: (worker.connectedBlocks ?? {}) as Record<string, unknown>,
        env: (worker.env ?? {}) as Record<string, string>,
      },
      { spawn: this.deps.spawn, python: this.deps.python, workDir: this.deps.workDir },
      {
        onReady: () => this.want(run, "RUNNING"),
        // The harness prints an error's traceback on stderr: it reaches the log as ERROR lines.
        onTick: (ok) => {
          if (ok) run.ticks++;
          else run.errors++;
        },
        onLog: (level, message) => this.deps.logs.write(this.source(worker), level, message),
        onExit: (status) => this.exited(run, status),
      },
    );
  }

  private async startContainer(run: Running): Promise<Running["handle"]> {
    const { worker } = run;
    const env = { ...stringEnv(process.env), ...((worker.env ?? {}) as Record<string, string>) };
    let command: string;
    let args: string[] = [];
    let shell = false;
    let containerName: string | null = null;
    if (worker.image) {
      const runtime = this.deps.containerRuntime;
      if (!runtime) {
        this.fail(run, `the worker runs image ${worker.image}, and this machine has no container runtime (docker or podman) that answers`);
        return null;
      }
      containerName = `spindle-worker-${worker.id.slice(0, 8)}-${worker.revision}`;
      await removeContainer(runtime, containerName);
      ({ command, args } = runtimeCommand(runtime, { name: containerName, image: worker.image, command: worker.command, env: Object.keys((worker.env ?? {}) as object) }));
    } else if (worker.command) {
      command = worker.command;
      shell = true;
    } else {
      this.fail(run, "the worker has neither an image nor a command");
      return null;
    }
    const child = this.deps.spawn({
      command,
      args,
      shell,
      cwd: this.deps.workDir,
      env,
      onLine: (stream, line) => this.deps.logs.write(this.source(worker), stream === "stderr" ? "ERROR" : "INFO", line),
    });
    const up = setTimeout(() => this.want(run, "RUNNING"), UP_AFTER_MS);
    void child.exited.then((status) => {
      clearTimeout(up);
      this.exited(run, status);
    });
    const runtime = this.deps.containerRuntime;
    if (!containerName || !runtime) return child;
    const name = containerName;
    return {
      usage: () => child.usage(),
      stop: async (graceMs: number) => {
        const status = await child.stop(graceMs);
        await removeContainer(runtime, name);
        return status;
      },
    };
  }

  private applySettings(run: Running, next: AgentWorker) {
    run.worker = next;
    run.settings = settingsOf(next);
    run.handle?.updateSettings?.({
      tickIntervalSeconds: next.tickIntervalSeconds,
      settings: workerSettings(next),
      connectedBlocks: (next.connectedBlocks ?? {}) as Record<string, unknown>,
    });
    this.deps.log.info(`worker ${next.name} (${next.id}): settings applied`);
  }

  private exited(run: Running, status: ExitStatus) {
    if (run.stopping) return;
    const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
    this.fail(run, `the process ${how}`);
  }

  /** Reports FAILED for this revision; the worker stays in the map (stopped) until the server reassigns it. */
  private fail(run: Running, reason: string) {
    this.deps.log.warn(`worker ${run.worker.name} (${run.worker.id}) revision ${run.worker.revision}: ${reason}`);
    this.deps.logs.write(this.source(run.worker), "ERROR", `[spindle agent] ${reason}`);
    run.handle = null;
    this.want(run, "FAILED", reason);
  }

  private want(run: Running, status: ReportedWorkerStatus, reason?: string) {
    if (run.stopping || run.reported === "FAILED") return;
    run.wanted = { status, reason };
    void this.reportAll();
  }

  private async stop(run: Running, why: string) {
    if (run.stopping) return;
    run.stopping = true;
    this.deps.log.info(`worker ${run.worker.name} (${run.worker.id}) revision ${run.worker.revision}: stopping (${why})`);
    await run.handle?.stop(this.deps.graceMs);
    await this.deps.logs.flush(this.source(run.worker), 2_000);
    if (this.running.get(run.worker.id) === run) this.running.delete(run.worker.id);
  }

  /** Status reports first, then tick counts with usage; one pass at a time. */
  private async reportAll() {
    if (this.reporting) return;
    this.reporting = true;
    try {
      for (const run of [...this.running.values()]) {
        if (run.stale) continue;
        await this.reportStatus(run);
        // Errors count from the start (a setup that keeps raising uses up the budget while DEPLOYING).
        if (run.reported !== "FAILED") await this.reportTicks(run);
      }
    } finally {
      this.reporting = false;
    }
  }

  private async reportStatus(run: Running) {
    const wanted = run.wanted;
    if (!wanted || wanted.status === run.reported) return;
    try {
      const reported = await this.deps.client.request(AgentReportWorkerStatusDocument, {
        input: { workerId: run.worker.id, revision: run.worker.revision, status: wanted.status, reason: wanted.reason?.slice(0, 500) },
      });
      run.reported = wanted.status;
      run.reportedAt = reported.reportWorkerStatus.updatedAt;
    } catch (error) {
      this.onReportError(run, error);
    }
  }

  private async reportTicks(run: Running) {
    const ticks = run.ticks;
    const errors = run.errors;
    if (ticks === 0 && errors === 0 && Date.now() - run.usageReportedAt < USAGE_EVERY_MS) return;
    const usage = run.handle ? await run.handle.usage().catch(() => null) : null;
    if (ticks === 0 && errors === 0 && !usage) return;
    run.usageReportedAt = Date.now();
    run.ticks -= ticks;
    run.errors -= errors;
    try {
      await this.deps.client.request(AgentReportWorkerTicksDocument, {
        input: {
          workerId: run.worker.id,
          revision: run.worker.revision,
          ticks,
          errors,
          ...(usage?.cpuPercent != null ? { cpuPercent: Math.round(usage.cpuPercent * 10) / 10 } : {}),
          ...(usage ? { memoryBytes: usage.memoryBytes } : {}),
        },
      });
    } catch (error) {
      // Not stored: counted again with the next report.
      if (error instanceof Unreachable) {
        run.ticks += ticks;
        run.errors += errors;
      }
      this.onReportError(run, error);
    }
  }

  private onReportError(run: Running, error: unknown) {
    if (error instanceof Refused) {
      // An old revision, or a worker no longer live: the next assignments say what to run instead.
      run.stale = true;
      this.deps.log.debug(`worker ${run.worker.id}: report refused (${error.code}): ${error.message}`);
    } else {
      this.deps.log.debug(`worker ${run.worker.id}: report waits: ${describe(error)}`);
    }
  }
}

/**
 * The server sent the worker back to DEPLOYING at the same revision after this machine reported on
 * its run (auto-heal, start after a failure, restart): a new run. A snapshot read before the report
 * landed is older than it, so it does not restart what just came up.
 */
export const isNewRun = (next: { status: string; updatedAt: string }, reportedAt: string | undefined) =>
  next.status === "DEPLOYING" && reportedAt !== undefined && Date.parse(next.updatedAt) > Date.parse(reportedAt);

/** What a settings change may touch without a redeploy. */
const settingsOf = (worker: AgentWorker) =>
  JSON.stringify([worker.tickIntervalSeconds, worker.maxErrors, worker.autoHeal, worker.connectedBlocks ?? {}]);

const workerSettings = (worker: AgentWorker) => ({
  tick_interval_seconds: worker.tickIntervalSeconds,
  max_errors: worker.maxErrors,
  auto_heal: worker.autoHeal,
});
