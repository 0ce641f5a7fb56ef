// Keeps the machine's services (of deployments) running as the server wants them. `reconcile` gets
// the assigned services (DEPLOYING or RUNNING, each at a revision): a new one or a new revision is
// started (RUNNING once it stayed up for a second), one no longer assigned is stopped. A service that
// exits on its own is started again after a backoff (1 s, doubling up to a minute; back to 1 s once
// it stayed up for a minute), and each restart is reported (reportServiceStatus RESTARTED: the
// service's restartCount and statusReason show it). One that cannot start at all is FAILED.
import { AgentReportServiceStatusDocument, type AgentServiceFragment, type ReportedServiceStatus } from "../generated/agent-graphql.js";
import { describe, Refused, sleep, type AgentClient } from "./client.js";
import { removeContainer, runtimeCommand, type ContainerRuntime } from "./containers.js";
import type { AgentLog } from "./log.js";
import type { LogShipper } from "./logs.js";
import type { Child, ExitStatus, Spawn } from "./process.types.js";
import { stringEnv } from "./tasks.js";
import { isNewRun } from "./workers.js";

export type AgentService = AgentServiceFragment;

const UP_AFTER_MS = 1_000;
const FIRST_RESTART_MS = 1_000;
const MAX_RESTART_MS = 60_000;
/** Up this long: the next crash starts the backoff over. */
const STABLE_AFTER_MS = 60_000;

export interface ServiceSupervisorDeps {
  client: AgentClient;
  logs: LogShipper;
  spawn: Spawn;
  log: AgentLog;
  workDir: string;
  containerRuntime: ContainerRuntime | null;
  graceMs: number;
}

interface Running {
  service: AgentService;
  /** The service's updatedAt (server time) after this run's last report (see workers.ts, isNewRun). */
  reportedAt?: string;
  child: Child | null;
  stop: AbortController;
  done: Promise<void>;
}

export class ServiceSupervisor {
  private readonly running = new Map<string, Running>();
  /** The latest assignment, by service id. */
  private wanted = new Map<string, AgentService>();

  constructor(private readonly deps: ServiceSupervisorDeps) {}

  get size() {
    return this.running.size;
  }

  reconcile(desired: readonly AgentService[]) {
    this.wanted = new Map(desired.map((service) => [service.id, service]));
    for (const [id, run] of this.running) {
      const next = this.wanted.get(id);
      if (!next) void this.stop(run, "no longer assigned to this machine");
      else if (next.revision !== run.service.revision) void this.swap(run, `revision ${next.revision} replaces ${run.service.revision}`);
      else if (isNewRun(next, run.reportedAt)) void this.swap(run, `a new run (${next.status} again after its report)`);
    }
    for (const service of desired) if (!this.running.has(service.id)) this.start(service);
  }

  /** Stops the run, then starts what the server wants by then (see WorkerSupervisor.swap). */
  private async swap(run: Running, why: string) {
    await this.stop(run, why);
    const latest = this.wanted.get(run.service.id);
    if (latest) this.start(latest);
  }

  async stopAll() {
    await Promise.all([...this.running.values()].map((run) => this.stop(run, "the agent is stopping")));
  }

  private start(service: AgentService) {
    if (this.running.has(service.id)) return;
    const run: Running = { service, child: null, stop: new AbortController(), done: Promise.resolve() };
    this.running.set(service.id, run);
    run.done = this.keepRunning(run).catch((error: unknown) => this.deps.log.error(`service ${service.id}: ${describe(error)}`));
  }

  private async stop(run: Running, why: string) {
    if (!run.stop.signal.aborted) {
      this.deps.log.info(`service ${run.service.name} (${run.service.id}) revision ${run.service.revision}: stopping (${why})`);
      run.stop.abort();
      await run.child?.stop(this.deps.graceMs);
      if (run.service.image && this.deps.containerRuntime) await removeContainer(this.deps.containerRuntime, containerNameOf(run.service));
    }
    await run.done;
    await this.deps.logs.flush({ type: "SERVICE", id: run.service.id }, 2_000);
    if (this.running.get(run.service.id) === run) this.running.delete(run.service.id);
  }

  /** Starts the service and starts it again each time it exits, until it is stopped. */
  private async keepRunning(run: Running) {
    const { service } = run;
    const source = { type: "SERVICE" as const, id: service.id };
    const spec = this.commandOf(service);
    if ("error" in spec) {
      this.deps.logs.write(source, "ERROR", `[spindle agent] ${spec.error}`);
      await this.report(run, "FAILED", spec.error);
      return;
    }
    let delay = FIRST_RESTART_MS;
    for (let restarts = 0; !run.stop.signal.aborted; restarts++) {
      this.deps.log.info(`service ${service.name} (${service.id}) revision ${service.revision}: ${restarts ? `restart ${restarts}` : "starting"}`);
      // A container a killed agent left behind would hold the name.
      if (service.image && this.deps.containerRuntime) await removeContainer(this.deps.containerRuntime, containerNameOf(service));
      const startedAt = Date.now();
      const child = this.deps.spawn({
        ...spec,
        cwd: this.deps.workDir,
        onLine: (stream, line) => this.deps.logs.write(source, stream === "stderr" ? "ERROR" : "INFO", line),
      });
      run.child = child;
      let exitedAt: number | null = null;
      const up = sleep(UP_AFTER_MS).then(async () => {
        if (!run.stop.signal.aborted && exitedAt === null && restarts === 0) await this.report(run, "RUNNING");
      });
      const status = await child.exited;
      exitedAt = Date.now();
      await up;
      run.child = null;
      if (run.stop.signal.aborted) return;
      const how = describeExit(status);
      if (restarts === 0 && exitedAt - startedAt < UP_AFTER_MS) {
        // It never came up: this revision cannot run here.
        this.deps.logs.write(source, "ERROR", `[spindle agent] the service ${how} at start`);
        await this.report(run, "FAILED", `the service ${how} at start`);
        return;
      }
      if (Date.now() - startedAt >= STABLE_AFTER_MS) delay = FIRST_RESTART_MS;
      const reason = `the service ${how}; restarted (restart ${restarts + 1}) after ${delay / 1000} s`;
      this.deps.logs.write(source, "WARN", `[spindle agent] ${reason}`);
      await sleep(delay, run.stop.signal);
      if (run.stop.signal.aborted) return;
      await this.report(run, "RESTARTED", reason);
      delay = Math.min(delay * 2, MAX_RESTART_MS);
    }
  }

  private commandOf(service: AgentService): { command: string; args: string[]; shell: boolean; env: Record<string, string> } | { error: string } {
    const env = { ...stringEnv(process.env), ...((service.env ?? {}) as Record<string, string>) };
    if (service.image) {
      const runtime = this.deps.containerRuntime;
      if (!runtime) return { error: `the service runs image ${service.image}, and this machine has no container runtime (docker or podman) that answers` };
      const name = containerNameOf(service);
      return { ...runtimeCommand(runtime, { name, image: service.image, command: service.command, env: Object.keys((service.env ?? {}) as object) }), shell: false, env };
    }
    if (service.command) return { command: service.command, args: [], shell: true, env };
    return { error: "the service has neither an image nor a command" };
  }

  /** Reports until it lands (the server may be away for a while); a refusal (old revision) ends it. */
  private async report(run: Running, status: ReportedServiceStatus, reason?: string) {
    for (let attempt = 0; ; attempt++) {
      try {
        const reported = await this.deps.client.request(AgentReportServiceStatusDocument, {
          input: { serviceId: run.service.id, revision: run.service.revision, status, reason: reason?.slice(0, 500) },
        });
        run.reportedAt = reported.reportServiceStatus.updatedAt;
        return;
      } catch (error) {
        if (error instanceof Refused) {
          this.deps.log.debug(`service ${run.service.id}: report ${status} refused (${error.code}): ${error.message}`);
          return;
        }
        if (run.stop.signal.aborted) return;
        await sleep(Math.min(10_000, 500 * 2 ** attempt), run.stop.signal);
      }
    }
  }
}

const containerNameOf = (service: AgentService) => `spindle-service-${service.id.slice(0, 8)}-${service.revision}`;

function describeExit(status: ExitStatus) {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}
