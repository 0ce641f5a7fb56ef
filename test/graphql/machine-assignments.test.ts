// The machines' push channel (`machineAssignments`), seen from the machine: its whole assignment at
// once, then an item each time what it must do changed (a worker placed, reconfigured or stopped, a
// task to claim, claimed or cancelled, a drain), none for counters (ticks), and an error that ends the
// stream once its credential stops working. Only machines may subscribe, and each sees only its own.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMachineDirect } from "../authz/world.js";
import {
  ApproveMachineDocument,
  CancelTaskDocument,
  ClaimTasksDocument,
  CreateTaskDocument,
  DecommissionMachineDocument,
  DeployWorkerDocument,
  DrainMachineDocument,
  MachineAssignmentsStreamDocument,
  type MachineAssignmentsStreamSubscription,
  ReportWorkerStatusDocument,
  ReportWorkerTicksDocument,
  RotateMachineCredentialDocument,
  StopWorkerDocument,
  UpdateWorkerSettingsDocument,
} from "../generated/graphql.js";
import { ownedWorkspace, unique, type SignedIn } from "../helpers/factories.js";
import { tracker, wsClient, wsSubscribe, type Inbox, type WsResult } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

/** How long an item caused by a change may take: generous, the machine is shared and noisy. */
const ITEM_MS = 10_000;
/** How long to watch for an item that must not come. */
const QUIET_MS = 2_000;
/**
 * Without a notice the stream reads again every 5 s (and once 0.5 s after opening): an end this soon
 * after the change, past the first re-read, most likely came from the change's notice.
 */
const NOTICE_MS = 3_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Assignments = MachineAssignmentsStreamSubscription["machineAssignments"];
type Stream = Inbox<WsResult<MachineAssignmentsStreamSubscription>>;

interface Team {
  owner: SignedIn;
  workspaceId: string;
  machine: { id: string; credential: string };
  blockId: string;
}

/** A workspace with its owner, one machine (with these capabilities) and one graph block for a CODE worker. */
async function team(capabilities: string[] = []): Promise<Team> {
  const { owner, workspace } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, workspace.id, { capabilities });
  const block = await server.db.prisma.graphBlock.create({
    data: { workspaceId: workspace.id, id: unique("node_"), type: "code.worker", label: "My Worker" },
  });
  return { owner, workspaceId: workspace.id, machine, blockId: block.id };
}

const as = (who: { accessToken: string } | { credential: string }) => ({ token: "accessToken" in who ? who.accessToken : who.credential });

/** The stream as the holder of this token (a machine credential, or a user's token for the refusals). */
const subscribe = (token: string): Stream =>
  wsSubscribe(wsClient(server, t, { authorization: `Bearer ${token}` }), t, MachineAssignmentsStreamDocument);

function itemOf(result: WsResult<MachineAssignmentsStreamSubscription>): Assignments {
  if (result.errors?.length || !result.data) throw new Error(`Expected an item, got ${JSON.stringify(result)}`);
  return result.data.machineAssignments;
}

const next = async (stream: Stream) => itemOf(await stream.next(ITEM_MS));

/** Waits as long as an item would take and checks that none came. */
async function expectNoItem(stream: Stream) {
  await sleep(QUIET_MS);
  expect(stream.pending).toEqual([]);
  expect(stream.end).toBeUndefined();
}

/** The machine's stream with its first item read, and that first item. */
async function opened(machine: { id: string; credential: string }) {
  const stream = subscribe(machine.credential);
  const first = await next(stream);
  expect(first.machine.id).toBe(machine.id);
  return { stream, first };
}

async function deployCode(team: Team, code = "def setup(ctx): pass\ndef tick(ctx): pass") {
  const input = { workspaceId: team.workspaceId, kind: "CODE" as const, blockId: team.blockId, code };
  return ok(await server.execute(DeployWorkerDocument, { input }, as(team.owner))).deployWorker;
}

async function createTask(team: Team, extra: { requiredCapabilities?: string[]; targetMachineId?: string } = {}) {
  const input = { workspaceId: team.workspaceId, title: unique("task"), ...extra };
  return ok(await server.execute(CreateTaskDocument, { input }, as(team.owner))).createTask;
}

describe(`machineAssignments (${backend})`, () => {
  it("sends the machine's whole assignment at once: nothing to run, nothing to claim", async () => {
    const { machine, workspaceId } = await team();
    const { first } = await opened(machine);
    expect(first).toMatchObject({
      claimable: false,
      machine: { id: machine.id, workspaceId, approval: "APPROVED", schedulable: true, draining: false },
      workers: [],
      services: [],
      tasks: [],
    });
    expect(Date.parse(first.at)).not.toBeNaN();
  });

  it("sends a worker deployed to the machine with its code and revision, its new settings, and its stop", async () => {
    const t1 = await team();
    const { stream } = await opened(t1.machine);

    const worker = await deployCode(t1, "def tick(ctx): print('v1')");
    expect(worker.machineId).toBe(t1.machine.id);
    const deployed = await next(stream);
    expect(deployed.workers).toEqual([
      expect.objectContaining({ id: worker.id, kind: "CODE", status: "DEPLOYING", revision: 1, code: "def tick(ctx): print('v1')", tickIntervalSeconds: 10 }),
    ]);

    ok(await server.execute(UpdateWorkerSettingsDocument, { input: { id: worker.id, tickIntervalSeconds: 30 } }, as(t1.owner)));
    const reconfigured = await next(stream);
    expect(reconfigured.workers).toEqual([expect.objectContaining({ id: worker.id, revision: 1, tickIntervalSeconds: 30 })]);

    ok(await server.execute(StopWorkerDocument, { id: worker.id }, as(t1.owner)));
    expect((await next(stream)).workers).toEqual([]);
  });

  it("says when a task may be claimed, lists it once claimed with its lease, and drops it once cancelled", async () => {
    const t1 = await team();
    const { stream } = await opened(t1.machine);

    const task = await createTask(t1);
    expect(await next(stream)).toMatchObject({ claimable: true, tasks: [] });

    const [claimed] = ok(await server.execute(ClaimTasksDocument, { input: null }, as(t1.machine))).claimTasks;
    expect(claimed?.id).toBe(task.id);
    const held = await next(stream);
    expect(held.claimable).toBe(false);
    expect(held.tasks).toEqual([
      expect.objectContaining({ id: task.id, status: "ASSIGNED", attempt: 1, leaseToken: claimed!.leaseToken, machine: { id: t1.machine.id } }),
    ]);
    expect(held.tasks[0]!.leaseToken).toMatch(/^[0-9a-f-]{36}$/);

    ok(await server.execute(CancelTaskDocument, { id: task.id, reason: "not needed" }, as(t1.owner)));
    expect(await next(stream)).toMatchObject({ claimable: false, tasks: [] });
  });

  it("is not claimable for a task needing a capability the machine lacks, nor one meant for another machine", async () => {
    const t1 = await team(["docker"]);
    const neighbour = await createMachineDirect(server, t1.workspaceId, { capabilities: ["docker", "gpu"] });
    const { stream } = await opened(t1.machine);

    await createTask(t1, { requiredCapabilities: ["gpu"] });
    await createTask(t1, { targetMachineId: neighbour.id });
    await expectNoItem(stream);

    // The neighbour may take both; this machine may take a task needing what it has.
    const { first: neighbours } = await opened(neighbour);
    expect(neighbours.claimable).toBe(true);
    await createTask(t1, { requiredCapabilities: ["docker"] });
    expect((await next(stream)).claimable).toBe(true);
  });

  it("sends the drain: draining, and nothing to claim any more", async () => {
    const t1 = await team();
    await createTask(t1);
    const { stream, first } = await opened(t1.machine);
    expect(first.claimable).toBe(true);

    ok(await server.execute(DrainMachineDocument, { id: t1.machine.id }, as(t1.owner)));
    expect(await next(stream)).toMatchObject({ claimable: false, machine: { id: t1.machine.id, draining: true, acceptingWork: false } });
  });

  it("sends the approval of a machine that was awaiting it", async () => {
    const t1 = await team();
    await server.db.prisma.machine.update({ where: { id: t1.machine.id }, data: { approval: "PENDING" } });
    await createTask(t1);
    const { stream, first } = await opened(t1.machine);
    expect(first).toMatchObject({ claimable: false, machine: { approval: "PENDING" } });

    ok(await server.execute(ApproveMachineDocument, { id: t1.machine.id, approved: true }, as(t1.owner)));
    expect(await next(stream)).toMatchObject({ claimable: true, machine: { approval: "APPROVED" } });
  });

  it("sends nothing for tick reports: counters ask nothing of the machine", async () => {
    const t1 = await team();
    const { stream } = await opened(t1.machine);
    const worker = await deployCode(t1);
    expect((await next(stream)).workers.map((w) => [w.id, w.status])).toEqual([[worker.id, "DEPLOYING"]]);
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: worker.id, revision: 1, status: "RUNNING" } }, as(t1.machine)));
    expect((await next(stream)).workers.map((w) => [w.id, w.status])).toEqual([[worker.id, "RUNNING"]]);

    for (let i = 0; i < 5; i++) {
      const input = { workerId: worker.id, revision: 1, ticks: 3, errors: i === 0 ? 1 : 0, cpuPercent: 10 + i, memoryBytes: 1_000_000 + i };
      ok(await server.execute(ReportWorkerTicksDocument, { input }, as(t1.machine)));
    }
    const counted = await server.db.prisma.worker.findUniqueOrThrow({ where: { id: worker.id } });
    expect(counted).toMatchObject({ tickCount: 15, errorCount: 1, status: "RUNNING" });
    // Tick reports do not wake this stream; a workspace event that changes nothing for the machine
    // does, so the counters above are read, and must not make an item.
    await createTask(t1, { requiredCapabilities: ["not-on-this-machine"] });
    await expectNoItem(stream);
  });

  describe("ends with NOT_AUTHENTICATED, soon, once the credential stops working", () => {
    /** Does `act` and expects the stream's last item to be that error, well before the 5 s re-read. */
    async function endsAfter(machine: { id: string; credential: string }, act: () => Promise<unknown>) {
      const { stream } = await opened(machine);
      await sleep(700); // past the re-read 0.5 s after opening
      const started = Date.now();
      await act();
      const last = await stream.next(ITEM_MS);
      expect(Date.now() - started).toBeLessThan(NOTICE_MS);
      expect(last.data ?? null).toBeNull();
      expect(last.errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");
      expect(await stream.ended(5_000)).toEqual({ error: undefined });
    }

    it("rotated by the machine itself; the new credential opens a new stream", async () => {
      const { machine } = await team();
      let credential = "";
      await endsAfter(machine, async () => {
        credential = ok(await server.execute(RotateMachineCredentialDocument, { machineId: null }, as(machine))).rotateMachineCredential.credential;
      });
      await opened({ id: machine.id, credential });
    });

    it("rotated by the owner", async () => {
      const { machine, owner } = await team();
      await endsAfter(machine, async () => ok(await server.execute(RotateMachineCredentialDocument, { machineId: machine.id }, as(owner))));
    });

    it("rejected", async () => {
      const { machine, owner } = await team();
      await endsAfter(machine, async () => ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: false }, as(owner))));
    });

    it("decommissioned", async () => {
      const { machine, owner } = await team();
      await endsAfter(machine, async () => ok(await server.execute(DecommissionMachineDocument, { id: machine.id }, as(owner))));
    });
  });

  it("refuses a user: FORBIDDEN, and no item", async () => {
    const { owner } = await team();
    const stream = subscribe(owner.accessToken);
    const refused = await stream.next(ITEM_MS);
    expect(refused.data ?? null).toBeNull();
    expect(refused.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    await stream.ended(5_000);
    expect(stream.pending).toEqual([]);
  });

  it("shows a machine only its own work: another workspace's machine stays as it was", async () => {
    const mine = await team();
    const theirs = await team();
    const { stream: myStream } = await opened(mine.machine);
    const { stream: theirStream, first } = await opened(theirs.machine);
    expect(first.workers).toEqual([]);

    const worker = await deployCode(mine);
    expect((await next(myStream)).workers.map((w) => w.id)).toEqual([worker.id]);
    await expectNoItem(theirStream);
    // Their next item (a task of their own to claim) still lists none of this workspace's work.
    await createTask(theirs);
    expect(await next(theirStream)).toMatchObject({ claimable: true, workers: [], services: [], tasks: [] });
  });

  it("shows a machine only its own work: a worker placed on its neighbour is not in its items", async () => {
    const t1 = await team();
    const neighbour = await createMachineDirect(server, t1.workspaceId);
    const streams = new Map([
      [t1.machine.id, (await opened(t1.machine)).stream],
      [neighbour.id, (await opened(neighbour)).stream],
    ]);
    const worker = await deployCode(t1);
    const holder = streams.get(worker.machineId!)!;
    const other = streams.get(worker.machineId === t1.machine.id ? neighbour.id : t1.machine.id)!;
    expect((await next(holder)).workers.map((w) => w.id)).toEqual([worker.id]);
    await createTask(t1);
    expect(await next(other)).toMatchObject({ claimable: true, workers: [] });
  });
});
