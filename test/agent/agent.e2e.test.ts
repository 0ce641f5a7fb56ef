// The machine agent end to end: a real server (this process, on the backend of the run) and real
// `spindle agent` processes running real Python, shell commands and services. What a user sees
// through the API is what is asserted: the machine online with what it detected, ticks and log
// lines of a CODE worker, a task's stages through a confirmation, a cancelled task's process gone,
// a crashing service restarted, and a killed agent's task finished by another machine.
import { execFile } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import {
  AddServiceDocument,
  CancelTaskDocument,
  ConfirmTaskStageDocument,
  CreateDeploymentDocument,
  CreateEnrollmentTokenDocument,
  CreateFlowDocument,
  CreateTaskDocument,
  DeployDeploymentDocument,
  DrainMachineDocument,
  RunFlowDocument,
  DeployWorkerDocument,
  LogsDocument,
  UpdateWorkerSettingsDocument,
  type CreateTaskInput,
} from "../generated/graphql.js";
import { AgentWhoAmIDocument } from "../../src/generated/agent-graphql.js";
import { eventually, newStateDir, processesRunning, startAgent, stopAllAgents, type AgentProcess } from "../helpers/agent.js";
import { root } from "../helpers/server-process.js";
import { ownedWorkspace, unique } from "../helpers/factories.js";
import { tracker, wsClient, wsSubscribe } from "../helpers/live.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();

beforeAll(async () => {
  // Short leases and offline timeout: a killed agent's task is free again within seconds.
  server = await startTestServer({ SPINDLE_TASK_LEASE: "4", SPINDLE_MACHINE_OFFLINE_AFTER: "6" });
});
afterEach(async () => {
  await t.closeAll();
  await stopAllAgents();
});
afterAll(() => server?.close());

interface Team {
  workspaceId: string;
  token: string;
}

async function team(): Promise<Team> {
  const { owner, workspaceId } = await ownedWorkspace(server);
  return { workspaceId, token: owner.accessToken };
}

async function enrollmentToken(tm: Team, labels: string[] = []) {
  const created = ok(await server.execute(CreateEnrollmentTokenDocument, { input: { workspaceId: tm.workspaceId, name: "e2e", labels } }, { token: tm.token }));
  return created.createEnrollmentToken.token!;
}

/** An enrolled agent of the team, and its machine once it is online. */
async function enrolledAgent(tm: Team, args: string[] = []) {
  // Several agents of one workspace run on this one host: each gets its own machine id.
  const args_ = ["--server", server.url, "--enroll", await enrollmentToken(tm), "--external-id", unique("host-"), "--kill-grace", "2", "--grace", "5", ...args];
  const agent = startAgent({ args: args_ });
  await agent.waitFor(/assignment stream connected/);
  const machine = await eventually(
    () => server.db.prisma.machine.findFirst({ where: { workspaceId: tm.workspaceId }, orderBy: { createdAt: "desc" } }).then((m) => m ?? undefined),
    "the machine to register",
  );
  return { agent, machine };
}

const prisma = () => server.db.prisma;

/** `spindle agent ...` run to its end (asynchronously: the server answering it runs in this process). */
const spindleAgent = (args: string[], stdin = "") =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, ["--import", "tsx", "src/cli/index.ts", "agent", ...args], { cwd: root, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ status: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });

/** A task of the team's workspace, created by its owner. */
const createTask = async (tm: Team, input: Omit<CreateTaskInput, "workspaceId">) =>
  ok(await server.execute(CreateTaskDocument, { input: { workspaceId: tm.workspaceId, ...input } }, { token: tm.token })).createTask;

/** The task once its status is one of `statuses` (stages included). */
const taskWhen = (id: string, statuses: string[], what: string, timeoutMs?: number) =>
  eventually(
    async () => {
      const task = await prisma().task.findUniqueOrThrow({ where: { id }, include: { stages: { orderBy: { index: "asc" } } } });
      return statuses.includes(task.status) ? task : undefined;
    },
    what,
    timeoutMs,
  );

/** A source's log lines in order, as [step, message]. */
const stepLines = async (sourceId: string) =>
  (await prisma().logLine.findMany({ where: { sourceId }, orderBy: { cursor: "asc" } })).map((line) => [line.step, line.message]);

/** A number to recognise a test's `sleep` process by its command line. */
const sleepMarker = () => String(1000 + Math.floor(Math.random() * 8000));

/** A graph block for a CODE worker to run. */
async function block(tm: Team) {
  const created = await prisma().graphBlock.create({ data: { workspaceId: tm.workspaceId, id: unique("node_"), type: "code.worker", label: "Ticker" } });
  return created.id;
}

describe(`spindle agent (${backend})`, () => {
  it("enrolls: the machine is online with its detected capabilities and flags; the credential is kept for the next start", async () => {
    const tm = await team();
    const { agent, machine } = await enrolledAgent(tm, ["--capability", "gpu", "--label", "rack-7"]);
    expect(machine.capabilities).toEqual(expect.arrayContaining(["shell", "python", "node", "gpu"]));
    // This machine's docker CLI has no daemon behind it: a runtime that does not answer is not claimed.
    expect(machine.capabilities).not.toContain("docker");
    expect(machine.labels).toContain("rack-7");
    expect(machine.hardware).toMatchObject({ cpuCores: expect.any(Number), memoryBytes: expect.any(Number) });
    const online = await eventually(
      async () => (await prisma().machine.findUnique({ where: { id: machine.id } }))?.cpuPercent != null,
      "a heartbeat with usage figures",
    );
    expect(online).toBe(true);
    const beat = await prisma().machine.findUniqueOrThrow({ where: { id: machine.id } });
    expect(beat.memoryPercent).toBeGreaterThan(0);
    expect(beat.diskPercent).toBeGreaterThan(0);
    expect(beat.lastHeartbeatAt).not.toBeNull();

    // The secrets are readable by this user only.
    expect(statSync(agent.stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(agent.stateDir, "state.json")).mode & 0o777).toBe(0o600);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });

    // The next start signs in with what it stored: the same machine, no second registration.
    const again = startAgent({ args: ["--server", server.url], stateDir: agent.stateDir });
    await again.waitFor(/assignment stream connected/);
    expect(await prisma().machine.count({ where: { workspaceId: tm.workspaceId } })).toBe(1);
    expect(again.output()).toContain(machine.id);
    await again.stop();
  });

  it("rotates and recovers its credential from the command line; a running agent takes the rotated one up", async () => {
    const tm = await team();
    const { agent, machine } = await enrolledAgent(tm);
    const stored = () => JSON.parse(readFileSync(path.join(agent.stateDir, "state.json"), "utf8")) as { credential: string; recoverySecret: string };
    const before = stored();

    const rotate = await spindleAgent(["rotate", "--state-dir", agent.stateDir]);
    expect([rotate.status, rotate.stdout]).toEqual([0, expect.stringContaining(`New credential for vm (${machine.id})`)]);
    const rotated = stored();
    expect(rotated.credential).not.toBe(before.credential);
    expect(rotated.recoverySecret).toBe(before.recoverySecret);
    expect(errorOf(await server.execute(AgentWhoAmIDocument, {}, { token: before.credential })).code).toBe("NOT_AUTHENTICATED");
    // The running agent's stream ends with the old credential; it finds the new one in its state folder and goes on.
    await agent.waitFor(/the state folder holds a newer credential: using it/);
    await eventually(() => (agent.output().match(/assignment stream connected/g) ?? []).length >= 2, "the stream to be back with the new credential");
    await agent.stop();

    const recover = await spindleAgent(["recover", "--state-dir", agent.stateDir]);
    expect([recover.status, recover.stdout]).toEqual([0, expect.stringContaining("New credential and recovery secret")]);
    const recovered = stored();
    expect(recovered.credential).not.toBe(rotated.credential);
    expect(recovered.recoverySecret).not.toBe(rotated.recoverySecret);
    expect(ok(await server.execute(AgentWhoAmIDocument, {}, { token: recovered.credential })).currentMachine.id).toBe(machine.id);
    // The old recovery secret is spent (given on stdin, out of the process list).
    const again = await spindleAgent(["recover", "--state-dir", newStateDir(), "--server", server.url, "--machine-id", machine.id, "--recovery-secret", "-"], `${rotated.recoverySecret}\n`);
    expect([again.status, again.stderr]).toEqual([77, expect.stringContaining("does not match")]);
  });

  it("runs a three-stage shell task through its confirmation, with each stage's output and log lines", async () => {
    const tm = await team();
    await enrolledAgent(tm);
    const created = await createTask(tm, {
      title: "release",
      stages: [{ name: "build" }, { name: "approve", requiresConfirmation: true }, { name: "ship" }],
      input: {
        commands: {
          build: 'echo compiling; echo \'{"artifact":"app.tgz"}\' > "$SPINDLE_OUTPUT"',
          approve: 'echo "will ship app.tgz" > "$SPINDLE_OUTPUT"',
          ship: 'echo "shipping stage $SPINDLE_STAGE_INDEX"; echo shipped > "$SPINDLE_OUTPUT"',
        },
      },
    });
    const suspended = await taskWhen(created.id, ["SUSPENDED"], "the task to suspend on its second stage");
    expect(suspended.currentStage).toBe(1);
    expect(suspended.stages.map((s) => [s.status, s.output])).toEqual([
      ["SUCCEEDED", { artifact: "app.tgz" }],
      ["SUSPENDED", "will ship app.tgz"],
      ["PENDING", null],
    ]);
    ok(await server.execute(ConfirmTaskStageDocument, { input: { taskId: created.id, stageIndex: 1, result: "go" } }, { token: tm.token }));
    const done = await taskWhen(created.id, ["SUCCEEDED"], "the task to succeed after the confirmation");
    expect(done.output).toEqual({ build: { artifact: "app.tgz" }, approve: "will ship app.tgz", ship: "shipped" });
    expect(await stepLines(created.id)).toEqual([
      ["build", "compiling"],
      ["ship", "shipping stage 2"],
    ]);
  });

  it("stops a cancelled task's process (TERM, then KILL after the grace period)", async () => {
    const tm = await team();
    await enrolledAgent(tm);
    // Ignores TERM: only the KILL after the agent's 2 s grace period ends it.
    const marker = sleepMarker();
    const created = await createTask(tm, { title: "long", input: { command: `trap '' TERM; exec sleep ${marker}` } });
    await eventually(() => processesRunning(["sleep", marker]).length === 1, "the task's process to run");
    ok(await server.execute(CancelTaskDocument, { id: created.id, reason: "no longer needed" }, { token: tm.token }));
    const cancelledAt = Date.now();
    await eventually(() => processesRunning(["sleep", marker]).length === 0, "the cancelled task's process to be gone", 10_000, 100);
    // Within the grace period (2 s) plus the time to hear of the cancellation.
    expect(Date.now() - cancelledAt).toBeLessThan(8_000);
    expect((await prisma().task.findUniqueOrThrow({ where: { id: created.id } })).status).toBe("CANCELLED");
  });

  it("runs a Python CODE worker: ticks counted, ctx.log lines streamed in order, a settings change applied without a restart", async () => {
    const tm = await team();
    await enrolledAgent(tm);
    const code = [
      "def setup(ctx):",
      "    ctx.state['n'] = 0",
      "",
      "def tick(ctx):",
      "    ctx.state['n'] += 1",
      "    ctx.log(f\"tick {ctx.state['n']} every {ctx.settings['tick_interval_seconds']}s\")",
    ].join("\n");
    const worker = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: tm.workspaceId, blockId: await block(tm), kind: "CODE", name: "ticker", code, tickIntervalSeconds: 1 } }, { token: tm.token }),
    ).deployWorker;
    const client = wsClient(server, t, { authorization: `Bearer ${tm.token}` });
    const inbox = wsSubscribe(client, t, LogsDocument, { source: { type: "WORKER", id: worker.id } });
    const messages: string[] = [];
    while (messages.length < 3) {
      const item = await inbox.next(20_000);
      messages.push(...(item.data?.logs.lines ?? []).map((line) => line.message));
    }
    expect(messages.slice(0, 3)).toEqual(["tick 1 every 1s", "tick 2 every 1s", "tick 3 every 1s"]);
    const running = await eventually(async () => {
      const row = await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } });
      return row.status === "RUNNING" && row.tickCount >= 2 ? row : undefined;
    }, "the worker to run and report ticks");
    expect(running.errorCount).toBe(0);

    ok(await server.execute(UpdateWorkerSettingsDocument, { input: { id: worker.id, tickIntervalSeconds: 2 } }, { token: tm.token }));
    for (;;) {
      const item = await inbox.next(20_000);
      const found = (item.data?.logs.lines ?? []).map((line) => line.message).find((m) => m.endsWith("every 2s"));
      if (found) {
        // The state dict survived: the count went on instead of starting over.
        expect(Number(/^tick (\d+)/.exec(found)![1])).toBeGreaterThan(3);
        break;
      }
    }
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).revision).toBe(running.revision);
  });

  it("fails a CODE worker whose tick raises after maxErrors, with the traceback in its log; auto-heal brings it back", async () => {
    const tm = await team();
    const { agent } = await enrolledAgent(tm, ["--log-level", "debug"]);
    onTestFailed(() => console.log(agent.output()));
    const code = ["def tick(ctx):", "    raise ValueError('boom at ' + str(len(ctx.state)))"].join("\n");
    const failing = ok(
      await server.execute(
        DeployWorkerDocument,
        { input: { workspaceId: tm.workspaceId, blockId: await block(tm), kind: "CODE", name: "broken", code, tickIntervalSeconds: 1, maxErrors: 2, autoHeal: false } },
        { token: tm.token },
      ),
    ).deployWorker;
    const failed = await eventually(async () => {
      const row = await prisma().worker.findUniqueOrThrow({ where: { id: failing.id } });
      return row.status === "FAILED" ? row : undefined;
    }, "the worker to fail");
    expect(failed.statusReason).toMatch(/2 errors reached the limit of 2/);
    const errors = await prisma().logLine.findMany({ where: { sourceId: failing.id, level: "ERROR" } });
    expect(errors.map((l) => l.message).join("\n")).toMatch(/Traceback[\s\S]*ValueError: boom at 0/);

    const healing = ok(
      await server.execute(
        DeployWorkerDocument,
        { input: { workspaceId: tm.workspaceId, blockId: await block(tm), kind: "CODE", name: "healing", code, tickIntervalSeconds: 1, maxErrors: 2, autoHeal: true } },
        { token: tm.token },
      ),
    ).deployWorker;
    // Healed: deployed again at once with a fresh error budget; the agent runs it again, whose errors
    // use up the new budget, and it is healed again.
    await eventually(
      async () => (await prisma().workerTransition.count({ where: { workerId: healing.id, action: "heal" } })) >= 2,
      "the worker to be healed twice",
    );
    const runs = await prisma().workerTransition.findMany({ where: { workerId: healing.id }, orderBy: { at: "asc" } });
    expect(runs.slice(0, 6).map((r) => `${r.action}:${r.to}`)).toEqual([
      "deploy:DEPLOYING",
      "running:RUNNING",
      "fail:FAILED",
      "heal:DEPLOYING",
      "running:RUNNING",
      "fail:FAILED",
    ]);
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: healing.id } })).autoHeal).toBe(true);
  }, 60_000);

  it("restarts a service process that crashes, and the restart shows on the service", async () => {
    const tm = await team();
    await enrolledAgent(tm);
    const deployment = ok(await server.execute(CreateDeploymentDocument, { input: { workspaceId: tm.workspaceId, name: "web" } }, { token: tm.token })).createDeployment;
    const service = ok(
      await server.execute(AddServiceDocument, { input: { deploymentId: deployment.id, name: "api", command: "echo up; sleep 1.5; echo dying >&2; exit 3" } }, { token: tm.token }),
    ).addService;
    ok(await server.execute(DeployDeploymentDocument, { input: { id: deployment.id } }, { token: tm.token }));
    const restarted = await eventually(async () => {
      const row = await prisma().service.findUniqueOrThrow({ where: { id: service.id } });
      return row.restartCount >= 1 ? row : undefined;
    }, "a restart to be reported", 20_000);
    expect(restarted.status).toBe("RUNNING");
    expect(restarted.statusReason).toMatch(/exited with code 3; restarted \(restart 1\)/);
    expect(restarted.lastRestartAt).not.toBeNull();
    const lines = await prisma().logLine.findMany({ where: { sourceId: service.id }, orderBy: { cursor: "asc" } });
    expect(lines.map((l) => l.message)).toEqual(expect.arrayContaining(["up", "dying", expect.stringMatching(/restarted/)]));
  });

  it("runs a stage in an external executor (--executor NAME=COMMAND): the task and stage as JSON on stdin, output through $SPINDLE_OUTPUT", async () => {
    const tm = await team();
    const executor = [
      "python3 -c 'import json, os, sys",
      "job = json.load(sys.stdin)",
      'print("training", job["stage"]["name"], "of", job["task"]["title"], "with", job["executor"])',
      'json.dump({"echo": job["task"]["input"]["x"] * 2}, open(os.environ["SPINDLE_OUTPUT"], "w"))\'',
    ].join("\n");
    const { machine } = await enrolledAgent(tm, ["--executor", `gpu=${executor}`]);
    expect(machine.capabilities).toContain("gpu");
    const created = await createTask(tm, { title: "model", requiredCapabilities: ["gpu"], stages: [{ name: "train" }], input: { x: 21 } });
    const done = await taskWhen(created.id, ["SUCCEEDED", "FAILED"], "the task to finish");
    expect([done.status, done.error]).toEqual(["SUCCEEDED", null]);
    expect(done.output).toEqual({ train: { echo: 42 } });
    expect(await stepLines(created.id)).toEqual([["train", "training train of model with gpu"]]);
  });

  it("runs a flow run's steps the same way, with the commands from the run's input", async () => {
    const tm = await team();
    await enrolledAgent(tm);
    const flow = ok(
      await server.execute(CreateFlowDocument, { input: { workspaceId: tm.workspaceId, name: "etl", status: "ACTIVE", definition: { steps: [{ name: "extract" }, { name: "load" }] } } }, { token: tm.token }),
    ).createFlow;
    const run = ok(
      await server.execute(RunFlowDocument, { input: { flowId: flow.id, input: { commands: { extract: "echo 3 rows", load: "echo loaded; exit 4" } } } }, { token: tm.token }),
    ).runFlow;
    const done = await taskWhen(run.id, ["FAILED"], "the run to fail on its second step");
    expect(done.error).toBe("Stage 1 (load) failed: exited with code 4");
    expect(done.stages.map((stage) => stage.status)).toEqual(["SUCCEEDED", "FAILED"]);
    expect(await stepLines(run.id)).toEqual([
      ["extract", "3 rows"],
      ["load", "loaded"],
    ]);
  });

  it("honours a drain (no new claims, DRAINED once its task is done), and on SIGTERM lets a running task finish", async () => {
    const tm = await team();
    const { agent, machine } = await enrolledAgent(tm, ["--log-level", "debug"]);
    onTestFailed(() => console.log(agent.output()));
    const running = await createTask(tm, { title: "finishing", input: { command: "sleep 2; echo finished" } });
    await eventually(async () => (await prisma().task.findUniqueOrThrow({ where: { id: running.id } })).status === "RUNNING", "the task to run");
    ok(await server.execute(DrainMachineDocument, { id: machine.id }, { token: tm.token }));
    const waiting = await createTask(tm, { title: "must wait", input: { command: "echo nope" } });
    await agent.waitFor(/drained: this machine runs no tasks/);
    expect(await prisma().task.findUniqueOrThrow({ where: { id: running.id } })).toMatchObject({ status: "SUCCEEDED", error: null });
    expect((await prisma().task.findUniqueOrThrow({ where: { id: waiting.id } })).status).toBe("PENDING");

    // Undrained by a second machine's absence of claims: the stop path. A task started just before SIGTERM finishes.
    await prisma().machine.update({ where: { id: machine.id }, data: { drainingSince: null } });
    await eventually(async () => (await prisma().task.findUniqueOrThrow({ where: { id: waiting.id } })).status === "SUCCEEDED", "the waiting task to run once undrained");
    const last = await createTask(tm, { title: "last", input: { command: "sleep 2; echo done" } });
    await eventually(async () => (await prisma().task.findUniqueOrThrow({ where: { id: last.id } })).status === "RUNNING", "the last task to run");
    expect(await agent.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(await prisma().task.findUniqueOrThrow({ where: { id: last.id } })).toMatchObject({ status: "SUCCEEDED", error: null });
  });

  it("restarts its workers after an agent restart, and stops them when it stops", async () => {
    const tm = await team();
    const { agent } = await enrolledAgent(tm);
    const marker = sleepMarker();
    const worker = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: tm.workspaceId, kind: "CONTAINER", name: "proc", command: `exec sleep ${marker}` } }, { token: tm.token }),
    ).deployWorker;
    await eventually(async () => (await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).status === "RUNNING", "the worker to run");
    expect(processesRunning(["sleep", marker])).toHaveLength(1);
    // What it uses is reported (the process group's resident memory).
    await eventually(async () => Number((await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).memoryBytes ?? 0) > 0, "the worker's memory use");
    expect(await agent.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(processesRunning(["sleep", marker])).toHaveLength(0);

    const again = startAgent({ args: ["--kill-grace", "2"], stateDir: agent.stateDir });
    await eventually(() => processesRunning(["sleep", marker]).length === 1, "the worker to run again after the agent restarted");
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).status).toBe("RUNNING");
    await again.stop();
  });

  it("an agent killed mid-stage and started again resumes its task: the running stage runs again, the finished one is kept", async () => {
    const tm = await team();
    const { agent } = await enrolledAgent(tm);
    const marker = sleepMarker();
    const created = await createTask(tm, {
      title: "resumable",
      stages: [{ name: "fetch" }, { name: "build" }],
      input: {
        commands: {
          fetch: 'echo 7 > "$SPINDLE_OUTPUT"',
          // Hangs the first time (the agent is killed meanwhile), finishes the second.
          build: `if [ -e resumed ]; then echo built > "$SPINDLE_OUTPUT"; else touch resumed; exec sleep ${marker}; fi`,
        },
      },
    });
    await eventually(() => processesRunning(["sleep", marker]).length === 1, "the build stage to run");
    await agent.stop("SIGKILL");
    await eventually(() => processesRunning(["sleep", marker]).length === 0, "the killed agent's stage to be stopped by the reaper", 10_000);

    const again = startAgent({ args: ["--kill-grace", "2"], stateDir: agent.stateDir });
    const done = await taskWhen(created.id, ["SUCCEEDED", "FAILED"], "the resumed task to finish", 30_000);
    expect([done.status, done.attempt, done.output]).toEqual(["SUCCEEDED", 1, { fetch: 7, build: "built" }]);
    await again.stop();
  });

  it("a task of an agent killed with SIGKILL: its process dies with it, its lease expires and a second agent finishes it", async () => {
    const tm = await team();
    const first = await enrolledAgent(tm, ["--capability", "slow"]);
    const marker = sleepMarker();
    const created = await createTask(tm, {
      title: "survives",
      requiredCapabilities: ["slow"],
      // The first attempt hangs; the second finishes.
      input: { command: `if [ "$SPINDLE_TASK_ATTEMPT" = 1 ]; then exec sleep ${marker}; fi; echo "finished attempt $SPINDLE_TASK_ATTEMPT"` },
    });
    await eventually(() => processesRunning(["sleep", marker]).length === 1, "the first attempt to run");
    await first.agent.stop("SIGKILL");
    // The reaper stops what the agent ran, although the agent itself could do nothing.
    await eventually(() => processesRunning(["sleep", marker]).length === 0, "the killed agent's process to be gone", 10_000);

    const second: AgentProcess = (await enrolledAgent(tm, ["--capability", "slow"])).agent;
    const done = await taskWhen(created.id, ["SUCCEEDED"], "the second agent to finish the task", 30_000);
    expect(done.attempt).toBe(2);
    const secondMachine = await prisma().machine.findFirstOrThrow({ where: { workspaceId: tm.workspaceId }, orderBy: { createdAt: "desc" } });
    expect(done.machineId).toBe(secondMachine.id);
    const events = await prisma().taskEvent.findMany({ where: { taskId: created.id }, orderBy: { at: "asc" } });
    expect(events.map((e) => e.type)).toContain("task.lease_expired");
    await second.stop();
  });
});
