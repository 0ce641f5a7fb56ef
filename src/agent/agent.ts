// The machine agent at run time: it keeps what runs on this machine equal to what the server assigns.
//
// - Assignments arrive on the machine's push channel (machineAssignments over graphql-ws). When the
//   stream drops, the agent polls the same state (1 s, doubling up to 30 s) and tries to subscribe
//   again at each poll, so it reacts within a second while the stream is up and keeps working while
//   it is not.
// - Each snapshot is reconciled: workers and services (their supervisors start, stop, swap and
//   update them), held tasks (a run whose task disappeared was cancelled: its process is stopped; a
//   held task nothing runs, after an agent restart, is picked up again from its first unfinished
//   stage; a stage confirmation wakes its run).
// - Heartbeats carry the machine's CPU, memory and disk use and renew the leases of the tasks it
//   holds; a run whose lease the heartbeat did not renew is stopped (another machine may have it).
// - Tasks are claimed when the stream says one is waiting, when a run ends, and every few seconds,
//   up to --max-tasks at once, never while the machine drains or the agent stops.
// - SIGTERM/SIGINT: no new claims; running tasks get the grace period to finish; then workers,
//   services and what is left are stopped and the logs flushed. Children never outlive the agent
//   (the reaper kills their process groups even after a SIGKILL).
import {
  AgentAssignmentsNowDocument,
  AgentAssignmentsStreamDocument,
  AgentClaimDocument,
  AgentHeartbeatDocument,
  type AgentAssignmentsFragment,
} from "../generated/agent-graphql.js";
import { backoff, describe, Refused, sleep, type AgentClient } from "./client.js";
import type { AgentLog } from "./log.js";
import type { LogShipper } from "./logs.js";
import type { Spawn } from "./process.types.js";
import { ServiceSupervisor, type AgentService } from "./services.js";
import { sampleMachine } from "./system.js";
import { TaskRun, type AgentTask } from "./tasks.js";
import { WorkerSupervisor, type AgentWorker } from "./workers.js";
import type { ContainerRuntime } from "./containers.js";

const CLAIM_EVERY_MS = 5_000;
const MAX_POLL_MS = 30_000;
/** A finished attempt is remembered this long at least, against stale snapshots that still list it. */
const FORGET_FINISHED_MS = 60_000;
/** How long a refused credential may wait for a newer one in the state folder before the agent gives up. */
const CREDENTIAL_WAIT_MS = 10_000;

export interface AgentRuntimeOptions {
  maxTasks: number;
  /** How long running tasks may take to finish after SIGTERM. */
  shutdownGraceMs: number;
  /** Between TERM and KILL when the agent stops a process. */
  killGraceMs: number;
  executors: ReadonlyMap<string, string>;
  capabilities: string[];
  hardware: Record<string, unknown>;
  /** Where disk use is measured (the state folder's filesystem). */
  diskPath: string;
  workDir: string;
  python: string | null;
  containerRuntime: ContainerRuntime | null;
}

interface Snapshot {
  claimable: boolean;
  draining: boolean;
  workers: readonly AgentWorker[];
  services: readonly AgentService[];
  tasks: readonly AgentTask[];
}

export class Agent {
  private readonly workers: WorkerSupervisor;
  private readonly services: ServiceSupervisor;
  private readonly runs = new Map<string, { run: TaskRun; startedAt: number }>();
  /** Attempts this agent finished or gave up: a stale snapshot that still lists them does not restart them. */
  private readonly finished = new Map<string, number>();
  private readonly stopping = new AbortController();
  /** Aborted once stopping is over: heartbeats go on until then (leases, cancellations, presence). */
  private readonly ranDown = new AbortController();
  private draining = false;
  private claimable = false;
  private claiming = false;
  private reportedDrained = false;
  private heartbeatMs = 10_000;
  /** Capabilities and hardware reached the server (sent with heartbeats until one lands). */
  private announced = false;
  /** Why the agent gave up (its credential no longer works), if it did. */
  failure?: Error;
  private unsubscribe?: () => void;
  private claimTimer?: NodeJS.Timeout;
  private stopped?: Promise<void>;
  private checkingCredential?: Promise<boolean>;

  constructor(
    private readonly client: AgentClient,
    private readonly logs: LogShipper,
    private readonly spawn: Spawn,
    private readonly log: AgentLog,
    private readonly options: AgentRuntimeOptions,
    private readonly hooks: { reloadCredential(): Promise<boolean> },
  ) {
    client.onCredentialRefused = (error) => void this.credentialRefused(error);
    const common = { client, logs, spawn, log, workDir: options.workDir, containerRuntime: options.containerRuntime, graceMs: options.killGraceMs };
    this.workers = new WorkerSupervisor({ ...common, python: options.python });
    this.services = new ServiceSupervisor(common);
  }

  /** Runs until `stop()`; resolves once everything it ran has stopped. */
  async run(): Promise<void> {
    await this.heartbeat();
    const loops = [this.heartbeatLoop(), this.assignmentLoop()];
    this.claimTimer = setInterval(() => void this.claim(), CLAIM_EVERY_MS);
    await Promise.all(loops);
    // The loops end as soon as stopping begins; what runs is stopped by then only once stop() is done.
    await this.stopped;
  }

  /** SIGTERM: no new claims; tasks get `shutdownGraceMs`; then everything stops and logs are flushed. */
  stop(): Promise<void> {
    this.stopped ??= this.stopEverything();
    return this.stopped;
  }

  private async stopEverything(): Promise<void> {
    this.log.info(`stopping: no new tasks; ${this.runs.size} running task(s) get ${this.options.shutdownGraceMs / 1000} s to finish`);
    this.stopping.abort();
    clearInterval(this.claimTimer);
    this.unsubscribe?.();
    const deadline = sleep(this.options.shutdownGraceMs).then(() => "timeout" as const);
    const all = Promise.all([...this.runs.values()].map(({ run }) => run.done)).then(() => "done" as const);
    if ((await Promise.race([all, deadline])) === "timeout") {
      this.log.warn(`${this.runs.size} task(s) did not finish within the grace period: stopped; their leases run out and another machine takes them`);
      await Promise.all([...this.runs.values()].map(({ run }) => run.abort("the agent is stopping")));
    }
    await Promise.all([this.workers.stopAll(), this.services.stopAll()]);
    this.ranDown.abort();
  }

  /**
   * The server refused the credential. When the state folder has a newer one (`spindle agent rotate`
   * ran meanwhile), the agent goes on with it; else it stops: true when it goes on.
   */
  private credentialRefused(error: Refused): Promise<boolean> {
    // Refused with a credential already replaced: carry on with the current one.
    if (error.generation < this.client.credentialGeneration) return Promise.resolve(true);
    // Many calls are refused at once: one look at the state folder answers them all.
    this.checkingCredential ??= this.lookForNewerCredential(error).finally(() => (this.checkingCredential = undefined));
    return this.checkingCredential;
  }

  private async lookForNewerCredential(error: Refused): Promise<boolean> {
    // `spindle agent rotate` writes the new credential a moment after the server took it.
    for (const deadline = Date.now() + CREDENTIAL_WAIT_MS; Date.now() < deadline && !this.stopping.signal.aborted; await sleep(250)) {
      if (error.generation < this.client.credentialGeneration) return true;
      if (await this.hooks.reloadCredential()) {
        this.log.info("the state folder holds a newer credential: using it");
        return true;
      }
    }
    if (!this.failure) {
      this.failure = error;
      this.log.error(`the server refused this machine's credential (${error.message}); run \`spindle agent recover\` with its recovery secret`);
      void this.stop();
    }
    return false;
  }

  // --- assignments ------------------------------------------------------------------------------

  private async assignmentLoop() {
    for (let failures = 0; !this.stopping.signal.aborted; ) {
      const { ended, delivered } = await this.subscribeOnce();
      if (this.stopping.signal.aborted) return;
      if (ended instanceof Refused && ended.code === "NOT_AUTHENTICATED" && !(await this.credentialRefused(ended))) return;
      // A stream that worked for a while starts the backoff over; one that fails at once backs off further.
      if (delivered) failures = 0;
      // Until the stream is back, poll the same state with backoff.
      const wait = Math.min(MAX_POLL_MS, backoff(failures++));
      this.log.warn(`assignment stream ended (${ended ? describe(ended) : "completed"}); polling every ${(wait / 1000).toFixed(1)} s until it is back`);
      await this.poll();
      await sleep(wait, this.stopping.signal);
    }
  }

  /** One subscription: resolves with what ended it, and whether it delivered anything. */
  private subscribeOnce(): Promise<{ ended?: Error; delivered: boolean }> {
    let delivered = false;
    return new Promise((resolve) => {
      this.unsubscribe = this.client.subscribe(AgentAssignmentsStreamDocument, {
        onItem: (data) => {
          if (!delivered) this.log.info("assignment stream connected");
          delivered = true;
          this.apply(fromStream(data.machineAssignments));
        },
        onEnd: (ended) => resolve({ ended, delivered }),
      });
    });
  }

  private async poll() {
    try {
      const data = await this.client.request(AgentAssignmentsNowDocument, {});
      this.apply({
        claimable: true,
        draining: data.currentMachine.draining,
        workers: data.assignedWorkers,
        services: data.assignedServices,
        tasks: data.assignedTasks.edges.map((edge) => edge.node),
      });
    } catch (error) {
      this.log.debug(`polling assignments failed: ${describe(error)}`);
    }
  }

  private apply(snapshot: Snapshot) {
    if (this.stopping.signal.aborted) return;
    this.log.debug(
      `assignments: workers [${snapshot.workers.map((w) => `${w.id}@${w.revision} ${w.status}`).join(", ")}], ` +
        `services [${snapshot.services.map((s) => `${s.id}@${s.revision} ${s.status}`).join(", ")}], ` +
        `tasks [${snapshot.tasks.map((t) => `${t.id} ${t.status}`).join(", ")}], claimable ${snapshot.claimable}, draining ${snapshot.draining}`,
    );
    this.draining = snapshot.draining;
    this.claimable = snapshot.claimable;
    this.workers.reconcile(snapshot.workers);
    this.services.reconcile(snapshot.services);
    this.reconcileTasks(snapshot.tasks);
    if (this.claimable) void this.claim();
    this.noteDrained();
  }

  private reconcileTasks(held: readonly AgentTask[]) {
    const byId = new Map(held.map((task) => [task.id, task]));
    for (const id of this.runs.keys()) {
      const task = byId.get(id);
      if (task) this.startRun(task);
      else void this.confirmGone(id);
    }
    for (const task of held) {
      if (!this.runs.has(task.id) && !this.finished.has(attemptKey(task))) {
        this.log.info(`task ${task.id}: held by this machine and not running here (agent restart?): resuming from its first unfinished stage`);
        this.startRun(task);
      }
    }
    // Forget what the server no longer lists, once no snapshot read before it finished can still be on its way.
    const old = Date.now() - FORGET_FINISHED_MS;
    for (const [key, at] of this.finished) if (at < old && !byId.has(key.slice(0, key.indexOf("#")))) this.finished.delete(key);
  }

  /** A run missing from a snapshot: the snapshot may predate its claim, so ask the server again before stopping it. */
  private async confirmGone(id: string) {
    for (let attempt = 0; attempt < 5 && this.runs.has(id) && !this.stopping.signal.aborted; attempt++) {
      try {
        const data = await this.client.request(AgentAssignmentsNowDocument, {});
        if (data.assignedTasks.edges.some((edge) => edge.node.id === id)) return;
        await this.runs.get(id)?.run.abort("cancelled, or no longer this machine's");
        return;
      } catch (error) {
        // Unanswered: ask again shortly (the heartbeat's lease check is the last resort).
        this.log.debug(`checking task ${id} failed: ${describe(error)}`);
        await sleep(backoff(attempt, 5_000), this.stopping.signal);
      }
    }
  }

  // --- tasks ----------------------------------------------------------------------------------------

  private async claim() {
    if (this.claiming || this.stopping.signal.aborted || this.draining) return;
    const free = this.options.maxTasks - this.runs.size;
    if (free <= 0) return;
    this.claiming = true;
    try {
      const claimed = (await this.client.request(AgentClaimDocument, { input: { limit: Math.min(free, 20) } })).claimTasks;
      for (const task of claimed) {
        this.log.info(`task ${task.id} (${task.title}): claimed, attempt ${task.attempt}`);
        this.startRun(task);
      }
      if (claimed.length === free) setImmediate(() => void this.claim());
    } catch (error) {
      this.log.debug(`claiming failed: ${describe(error)}`);
    } finally {
      this.claiming = false;
    }
  }

  private startRun(task: AgentTask) {
    // Claimed while stopping: not started; its lease runs out and another machine takes it.
    if (this.stopping.signal.aborted) return;
    // A snapshot sent after the claim committed may arrive before the claim's own answer: one run per task.
    const running = this.runs.get(task.id);
    if (running && running.run.attempt === task.attempt) return running.run.update(task);
    if (running) {
      // This machine claimed the task again after its lease ran out: the old attempt is over.
      void running.run.abort(`attempt ${task.attempt} replaces it`).then(() => this.startRun(task));
      return;
    }
    if (this.finished.has(attemptKey(task))) return;
    const run = new TaskRun(task, {
      client: this.client,
      logs: this.logs,
      spawn: this.spawn,
      log: this.log,
      workDir: this.options.workDir,
      executors: this.options.executors,
      graceMs: this.options.killGraceMs,
    });
    this.runs.set(task.id, { run, startedAt: Date.now() });
    void run.done.then(() => {
      this.finished.set(attemptKey(task), Date.now());
      if (this.runs.get(task.id)?.run === run) this.runs.delete(task.id);
      this.logs.forget({ type: "TASK", id: task.id });
      this.noteDrained();
      void this.claim();
    });
  }

  private noteDrained() {
    if (!this.draining) {
      this.reportedDrained = false;
      return;
    }
    if (this.runs.size === 0 && !this.reportedDrained) {
      this.reportedDrained = true;
      this.log.info("drained: this machine runs no tasks and takes no new ones");
    }
  }

  // --- heartbeats ---------------------------------------------------------------------------------

  private async heartbeatLoop() {
    for (let failures = 0; !this.ranDown.signal.aborted; ) {
      await sleep(failures ? Math.min(this.heartbeatMs, backoff(failures)) : this.heartbeatMs, this.ranDown.signal);
      if (this.ranDown.signal.aborted) return;
      failures = (await this.heartbeat()) ? 0 : failures + 1;
    }
  }

  /** One heartbeat; false when it did not reach the server. Until one lands, they also send capabilities and hardware. */
  private async heartbeat(): Promise<boolean> {
    const sentAt = Date.now();
    const first = !this.announced;
    try {
      const load = await sampleMachine(this.options.diskPath);
      const data = await this.client.request(AgentHeartbeatDocument, {
        input: {
          cpuPercent: round(load.cpuPercent),
          memoryPercent: round(load.memoryPercent),
          diskPercent: round(load.diskPercent),
          ...(first ? { capabilities: this.options.capabilities, hardware: this.options.hardware } : {}),
        },
      });
      const beat = data.machineHeartbeat;
      this.announced = true;
      // Well within both the offline timeout and the lease, so neither runs out between beats.
      this.heartbeatMs = Math.max(1_000, Math.min(10_000, (beat.offlineAfterSeconds * 1000) / 3, (beat.leaseSeconds * 1000) / 3));
      this.draining = beat.machine.draining;
      const leased = new Set(beat.leasedTaskIds);
      for (const [id, { run, startedAt }] of this.runs) {
        if (startedAt < sentAt && !leased.has(id) && !run.stopping) void run.abort("its lease was not renewed (it expired)");
      }
      this.noteDrained();
      return true;
    } catch (error) {
      // Whatever failed (the server, or reading the machine's figures), the next beat tries again.
      this.log.warn(`heartbeat failed: ${describe(error)}`);
      if (error instanceof Refused && error.code === "NOT_AUTHENTICATED") await this.credentialRefused(error);
      return false;
    }
  }
}

function fromStream(item: AgentAssignmentsFragment): Snapshot {
  return { claimable: item.claimable, draining: item.machine.draining, workers: item.workers, services: item.services, tasks: item.tasks };
}

const attemptKey = (task: { id: string; attempt: number }) => `${task.id}#${task.attempt}`;
const round = (value: number) => Math.round(value * 10) / 10;
