// Runs the tasks (and flow runs) the agent claimed, stage by stage, through executors.
//
// A stage runs in an executor: the built-in `shell` executor runs the stage's command from the
// task's input (`input.commands[stageName]`, `input.commands[index]`, or `input.command` for a task
// without stages) with /bin/sh; an external executor (`--executor NAME=COMMAND`) gets the task and
// stage as JSON on stdin. Either way stdout and stderr become the task's log lines (named after the
// stage), exit 0 means success, and whatever the program writes to the file named by $SPINDLE_OUTPUT
// is the stage's output (JSON when it parses, else the text). README, "The executor protocol".
//
// A stage that requires confirmation runs its command (if it has one), then suspends the task with
// that output; the run waits until the assignment stream shows the stage confirmed, then goes on.
// A task that disappears from the machine's assignments (cancelled) or whose lease a heartbeat did
// not renew is stopped: its process gets TERM, then KILL after the grace period, and nothing more is
// reported for it.
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  AgentAssignmentsNowDocument,
  AgentCompleteTaskDocument,
  AgentFailTaskDocument,
  AgentReportStageDocument,
  AgentStartTaskDocument,
  type AgentTaskFragment,
  type ReportedStageStatus,
} from "../generated/agent-graphql.js";
import { backoff, describe, Refused, sleep, Unreachable, type AgentClient } from "./client.js";
import type { AgentLog } from "./log.js";
import type { LogShipper } from "./logs.js";
import type { Child, Spawn } from "./process.types.js";

export type AgentTask = AgentTaskFragment;
type Stage = AgentTask["stages"][number];

export interface TaskRunnerDeps {
  client: AgentClient;
  logs: LogShipper;
  spawn: Spawn;
  log: AgentLog;
  /** Where stage output files are written. */
  workDir: string;
  /** External executors by name (--executor NAME=COMMAND). */
  executors: ReadonlyMap<string, string>;
  /** TERM, then KILL after this long. */
  graceMs: number;
}

/** Why a run stopped before it finished: nothing more is reported for it. */
class Stopped extends Error {}

interface StageResult {
  ok: boolean;
  output?: unknown;
  error?: string;
}

export class TaskRun {
  private readonly stop = new AbortController();
  private child: Child | null = null;
  private latest: AgentTask;
  private wakeWaiters: (() => void)[] = [];
  readonly done: Promise<void>;

  constructor(
    task: AgentTask,
    private readonly deps: TaskRunnerDeps,
  ) {
    this.latest = task;
    this.done = this.run().catch((error: unknown) => {
      if (error instanceof Stopped) return;
      deps.log.error(`task ${task.id}: ${describe(error)}`);
    });
  }

  get id() {
    return this.latest.id;
  }

  get attempt() {
    return this.latest.attempt;
  }

  get stopping() {
    return this.stop.signal.aborted;
  }

  /** A newer view of the task from the server (a stage confirmed). */
  update(task: AgentTask) {
    if (task.attempt !== this.latest.attempt) return;
    this.latest = task;
    for (const wake of this.wakeWaiters.splice(0)) wake();
  }

  /** Cancelled, lease lost, or the agent gives up waiting: the process is stopped, nothing more reported. */
  async abort(reason: string) {
    if (this.stop.signal.aborted) return this.done;
    this.deps.log.info(`task ${this.latest.id}: stopping (${reason})`);
    this.stop.abort();
    for (const wake of this.wakeWaiters.splice(0)) wake();
    await this.child?.stop(this.deps.graceMs);
    return this.done;
  }

  private get source() {
    return { type: "TASK" as const, id: this.latest.id };
  }

  private async run() {
    const task = this.latest;
    const lease = { taskId: task.id, leaseToken: task.leaseToken! };
    if (task.status === "ASSIGNED") {
      await this.call(() => this.deps.client.request(AgentStartTaskDocument, { input: lease }), (now) => now.status !== "ASSIGNED");
    }
    const stages = [...task.stages].sort((a, b) => a.index - b.index);
    // A resumed task (agent restart) keeps what its finished stages produced.
    const outputs: Record<string, unknown> = Object.fromEntries(stages.filter((s) => s.output != null).map((s) => [s.name, s.output]));
    for (const stage of stages) {
      const now = this.latest.stages.find((s) => s.index === stage.index) ?? stage;
      if (now.status === "SUCCEEDED" || now.status === "SKIPPED") continue;
      if (now.status === "SUSPENDED") {
        await this.confirmed(stage);
        continue;
      }
      // A stage the server shows RUNNING was started by an earlier run of this agent: it runs again.
      if (now.status !== "RUNNING") await this.report(stage, "RUNNING");
      const result = await this.execute(stage);
      if (!result.ok) return this.finishFailed(`Stage ${stage.index} (${stage.name}) failed: ${result.error}`, stage, result);
      if (result.output !== undefined) outputs[stage.name] = result.output;
      if (stage.requiresConfirmation) {
        await this.report(stage, "SUSPENDED", { output: result.output });
        await this.confirmed(stage);
      } else {
        await this.report(stage, "SUCCEEDED", { output: result.output });
      }
    }
    let output: unknown = stages.length > 0 ? outputs : undefined;
    if (stages.length === 0) {
      const result = await this.execute(null);
      if (!result.ok) return this.finishFailed(result.error ?? "failed", null, result);
      output = result.output;
    }
    await this.deps.logs.flush(this.source);
    await this.call(() => this.deps.client.request(AgentCompleteTaskDocument, { input: { ...lease, output: output ?? null } }), null);
    this.deps.log.info(`task ${task.id}: succeeded`);
  }

  private async finishFailed(error: string, stage: Stage | null, result: StageResult) {
    if (stage) await this.report(stage, "FAILED", { error: result.error ?? error, output: result.output });
    await this.deps.logs.flush(this.source);
    const lease = { taskId: this.latest.id, leaseToken: this.latest.leaseToken! };
    await this.call(() => this.deps.client.request(AgentFailTaskDocument, { input: { ...lease, error: error.slice(0, 10_000), output: result.output ?? null } }), null);
    this.deps.log.info(`task ${this.latest.id}: failed (${error})`);
  }

  private report(stage: Stage, status: ReportedStageStatus, extra: { output?: unknown; error?: string } = {}) {
    const landed = (now: AgentTask) => now.stages.find((s) => s.index === stage.index)?.status === status;
    return this.call(
      () =>
      this.deps.client.request(AgentReportStageDocument, {
        input: {
          taskId: this.latest.id,
          leaseToken: this.latest.leaseToken!,
          stageIndex: stage.index,
          status,
          ...(extra.output !== undefined ? { output: extra.output } : {}),
          ...(extra.error !== undefined ? { error: extra.error.slice(0, 10_000) } : {}),
        },
      }),
      landed,
    );
  }

  /** Waits until the stage shows confirmed (SUCCEEDED) in what the server sends. */
  private async confirmed(stage: Stage) {
    this.deps.log.info(`task ${this.latest.id}: stage ${stage.index} (${stage.name}) waits for confirmation`);
    for (;;) {
      if (this.stop.signal.aborted) throw new Stopped();
      const now = this.latest.stages.find((s) => s.index === stage.index);
      if (now?.status === "SUCCEEDED") return;
      await new Promise<void>((resolve) => this.wakeWaiters.push(resolve));
    }
  }

  /**
   * A call about the task, retried while the server is unreachable. A refusal is checked against
   * the task as the server has it now: when `landed` says an earlier try went through (its answer
   * was lost), the call is done. A lost lease ends the run; any other refusal fails the attempt, so
   * that the task is never left held by a machine that gave up on it.
   */
  private async call<T>(fn: () => Promise<T>, landed: ((now: AgentTask) => boolean) | null): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      if (this.stop.signal.aborted) throw new Stopped();
      try {
        return await fn();
      } catch (error) {
        if (error instanceof Refused) return this.refused(error, landed);
        if (!(error instanceof Unreachable)) throw error;
        await sleep(backoff(attempt, 10_000), this.stop.signal);
      }
    }
  }

  private async refused(error: Refused, landed: ((now: AgentTask) => boolean) | null): Promise<undefined> {
    const now = await this.current();
    if (now && landed?.(now)) return undefined;
    this.stop.abort();
    await this.child?.stop(this.deps.graceMs);
    if (error.extensions.leaseLost || !now) {
      this.deps.log.warn(`task ${this.latest.id}: no longer this machine's (${error.message}); stopped`);
    } else {
      this.deps.log.warn(`task ${this.latest.id}: the server refused a report (${error.code}: ${error.message}); failing the attempt`);
      const why = `The agent gave up: the server refused its report (${error.message})`.slice(0, 10_000);
      await this.deps.client
        .request(AgentFailTaskDocument, { input: { taskId: now.id, leaseToken: now.leaseToken!, error: why } })
        .catch((failed: unknown) => this.deps.log.warn(`task ${now.id}: could not fail it either: ${describe(failed)}`));
    }
    throw new Stopped();
  }

  /** This attempt of the task as the server has it now, or null when this machine no longer holds it. */
  private async current(): Promise<AgentTask | null> {
    try {
      const data = await this.deps.client.request(AgentAssignmentsNowDocument, {});
      const now = data.assignedTasks.edges.map((edge) => edge.node).find((task) => task.id === this.latest.id);
      return now && now.attempt === this.latest.attempt ? now : null;
    } catch {
      return null;
    }
  }

  /** Runs one stage (or the whole stage-less task) in its executor. */
  private async execute(stage: Stage | null): Promise<StageResult> {
    if (this.stop.signal.aborted) throw new Stopped();
    const task = this.latest;
    const input = (task.input ?? {}) as Record<string, unknown>;
    const executor = chooseExecutor(task, this.deps.executors);
    if (executor.error) return { ok: false, error: executor.error };
    const outputFile = join(this.deps.workDir, `task-${task.id}-${task.attempt}-${stage?.index ?? "all"}.out`);
    const env: Record<string, string> = {
      ...stringEnv(process.env),
      SPINDLE_TASK_ID: task.id,
      SPINDLE_TASK_ATTEMPT: String(task.attempt),
      SPINDLE_OUTPUT: outputFile,
      ...(stage ? { SPINDLE_STAGE_INDEX: String(stage.index), SPINDLE_STAGE_NAME: stage.name } : {}),
    };
    let command: string;
    let stdin: string | undefined;
    if (executor.name === "shell") {
      const found = shellCommand(input, stage);
      if (!found) {
        return {
          ok: false,
          error: stage
            ? `no command for stage ${stage.index} (${stage.name}): give input.commands["${stage.name}"] (or input.commands[${stage.index}])`
            : 'no command: give input.command (or stages with input.commands)',
        };
      }
      command = found;
    } else {
      command = executor.command!;
      stdin = `${JSON.stringify({
        executor: executor.name,
        task: { id: task.id, title: task.title, attempt: task.attempt, input: task.input ?? null, instructions: task.instructions ?? null, requiredCapabilities: task.requiredCapabilities },
        stage: stage ? { index: stage.index, name: stage.name, prompt: stage.prompt ?? null, requiresConfirmation: stage.requiresConfirmation } : null,
        outputFile,
      })}\n`;
    }
    const step = stage?.name;
    this.child = this.deps.spawn({
      command,
      shell: true,
      cwd: this.deps.workDir,
      env,
      stdin,
      onLine: (stream, line) => this.deps.logs.write(this.source, stream === "stderr" ? "ERROR" : "INFO", line, step),
    });
    const exit = await this.child.exited;
    this.child = null;
    const output = await readOutput(outputFile);
    if (this.stop.signal.aborted) throw new Stopped();
    if (exit.code === 0) return { ok: true, output };
    return { ok: false, output, error: exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}` };
  }
}

/** `input.executor` when given; else the first required capability with a configured executor; else shell. */
function chooseExecutor(task: AgentTask, executors: ReadonlyMap<string, string>): { name: string; command?: string; error?: string } {
  const asked = (task.input as Record<string, unknown> | null)?.executor;
  if (typeof asked === "string" && asked !== "shell") {
    const command = executors.get(asked);
    return command ? { name: asked, command } : { name: asked, error: `this machine has no executor "${asked}" (configured: shell${[...executors.keys()].map((n) => `, ${n}`).join("")})` };
  }
  if (asked === "shell") return { name: "shell" };
  for (const capability of task.requiredCapabilities) {
    const command = executors.get(capability);
    if (command) return { name: capability, command };
  }
  return { name: "shell" };
}

function shellCommand(input: Record<string, unknown>, stage: Stage | null): string | null {
  const pick = (value: unknown) => (typeof value === "string" && value.trim() ? value : Array.isArray(value) && value.every((v) => typeof v === "string") ? value.join("\n") : null);
  if (!stage) return pick(input.command);
  const commands = input.commands;
  if (Array.isArray(commands)) return pick(commands[stage.index]);
  if (commands && typeof commands === "object") return pick((commands as Record<string, unknown>)[stage.name]);
  return null;
}

async function readOutput(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  await rm(file, { force: true });
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.replace(/\n$/, "");
  }
}

export function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  return out;
}
