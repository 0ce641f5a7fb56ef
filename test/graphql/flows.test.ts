// Flows: create (definition checks, idempotency), edit (version bumps), the status machine with every
// illegal transition, runs (tasks with the flow's steps and version), runs executed elsewhere and
// recorded, definitions kept as text (flows' definition_json), lists, delete, and the statement
// count of flows with their runs.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowStatus } from "../../src/generated/prisma/client.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import {
  CreateFlowDocument,
  AppendLogsDocument,
  ClaimTasksDocument,
  DeleteFlowDocument,
  FlowDetailsDocument,
  RecordFlowRunDocument,
  RunFlowDocument,
  SetFlowStatusDocument,
  TaskDetailsDocument,
  UpdateFlowDocument,
  WorkspaceFlowsDeepDocument,
  WorkspaceFlowsDocument,
  type CreateFlowInput,
  type RecordFlowRunInput,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

async function workspace() {
  const { owner, workspace: ws } = await ownedWorkspace(server);
  return { workspaceId: ws.id, owner, token: owner.accessToken };
}

const definition = {
  steps: [{ name: "fetch", kind: "http" }, { name: "review", requiresConfirmation: true, prompt: { question: "Publish?" } }, { name: "publish" }],
  layout: { zoom: 1 },
};

async function createFlow(token: string, workspaceId: string, input: Partial<CreateFlowInput> = {}) {
  return ok(await server.execute(CreateFlowDocument, { input: { workspaceId, name: unique("flow"), definition, ...input } }, { token })).createFlow;
}

const setStatus = (token: string, id: string, status: FlowStatus) => server.execute(SetFlowStatusDocument, { id, status }, { token });

describe(`flows (${backend})`, () => {
  it("creates a DRAFT at version 1, keeps unknown definition keys, and audits", async () => {
    const { workspaceId, token, owner } = await workspace();
    const flow = await createFlow(token, workspaceId, { name: "Nightly report", description: "every night" });
    expect(flow).toMatchObject({ workspaceId, name: "Nightly report", description: "every night", status: "DRAFT", version: 1, definition });
    const bare = await createFlow(token, workspaceId, { definition: null });
    expect(bare.definition).toEqual({ steps: [] });
    const audit = await prisma().auditEntry.findMany({ where: { targetId: flow.id } });
    expect(audit.map((a) => [a.action, a.userId])).toEqual([["flow.create", owner.id]]);
  });

  it.each([
    ["an empty name", { name: " " }, "input.name"],
    ["a definition that is a list", { definition: [1, 2] }, "input.definition"],
    ["a definition without steps", { definition: { nodes: [] } }, "input.definition.steps"],
    ["a step without a name", { definition: { steps: [{ name: "a" }, { kind: "x" }] } }, "input.definition.steps.1.name"],
    ["a definition over 256 KiB", { definition: { steps: [], blob: "x".repeat(257 * 1024) } }, "input.definition"],
    ["101 steps", { definition: { steps: Array.from({ length: 101 }, (_, i) => ({ name: `s${i}` })) } }, "input.definition.steps"],
  ] as [string, Partial<CreateFlowInput>, string][])("refuses %s, naming the field", async (_what, input, field) => {
    const { workspaceId, token } = await workspace();
    const error = errorOf(await server.execute(CreateFlowDocument, { input: { workspaceId, name: "f", ...input } }, { token }));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual([field]);
    expect(await prisma().flow.count({ where: { workspaceId } })).toBe(0);
  });

  it("is idempotent with a key", async () => {
    const { workspaceId, token } = await workspace();
    const input = { workspaceId, name: "once", definition, idempotencyKey: unique("k") };
    const first = ok(await server.execute(CreateFlowDocument, { input }, { token })).createFlow;
    const again = ok(await server.execute(CreateFlowDocument, { input }, { token })).createFlow;
    expect(again.id).toBe(first.id);
    expect(await prisma().flow.count({ where: { workspaceId } })).toBe(1);
    expect(errorOf(await server.execute(CreateFlowDocument, { input: { ...input, name: "twice" } }, { token })).code).toBe("CONFLICT");
  });

  it("bumps the version only when the definition changes, and freezes ARCHIVED flows", async () => {
    const { workspaceId, token } = await workspace();
    const flow = await createFlow(token, workspaceId);
    const renamed = ok(await server.execute(UpdateFlowDocument, { input: { id: flow.id, name: "Renamed", description: null } }, { token })).updateFlow;
    expect(renamed).toMatchObject({ name: "Renamed", description: null, version: 1 });
    const reordered = { layout: { zoom: 1 }, steps: definition.steps };
    expect(ok(await server.execute(UpdateFlowDocument, { input: { id: flow.id, definition: reordered } }, { token })).updateFlow.version).toBe(1);
    const changed = ok(await server.execute(UpdateFlowDocument, { input: { id: flow.id, definition: { steps: [{ name: "only" }] } } }, { token })).updateFlow;
    expect(changed).toMatchObject({ version: 2, definition: { steps: [{ name: "only" }] } });

    ok(await setStatus(token, flow.id, "ARCHIVED"));
    const frozen = errorOf(await server.execute(UpdateFlowDocument, { input: { id: flow.id, name: "again" } }, { token }));
    expect(frozen).toMatchObject({ code: "CONFLICT", extensions: { status: "ARCHIVED" } });
    expect(frozen.message).toMatch(/Cannot update flow .*: it is ARCHIVED/);
    expect(fieldsOf(errorOf(await server.execute(UpdateFlowDocument, { input: { id: flow.id } }, { token })))).toEqual(["input"]);
    expect(fieldsOf(errorOf(await server.execute(UpdateFlowDocument, { input: { id: flow.id, definition: { steps: "no" } } }, { token })))).toEqual([
      "input.definition.steps",
    ]);
  });

  const statuses: FlowStatus[] = ["DRAFT", "ACTIVE", "ARCHIVED"];
  const legal: Record<FlowStatus, FlowStatus[]> = { DRAFT: ["ACTIVE", "ARCHIVED"], ACTIVE: ["DRAFT", "ARCHIVED"], ARCHIVED: ["DRAFT"] };
  const pairs = statuses.flatMap((from) => statuses.map((to) => [from, to, legal[from].includes(to) ? "ok" : "CONFLICT"] as const));
  it.each(pairs)("%s -> %s: %s", async (from, to, expected) => {
    const { workspaceId, token } = await workspace();
    const flow = await prisma().flow.create({ data: { workspaceId, name: "f", status: from } });
    const res = await setStatus(token, flow.id, to);
    if (expected === "ok") {
      expect(ok(res).setFlowStatus.status).toBe(to);
      return;
    }
    const error = errorOf(res);
    expect(error).toMatchObject({ code: "CONFLICT", extensions: { status: from } });
    expect(error.message).toMatch(new RegExp(`Cannot (activate flow|archive flow|move flow .* back to DRAFT).*: it is ${from}$`));
    expect((await prisma().flow.findUniqueOrThrow({ where: { id: flow.id } })).status).toBe(from);
  });

  it("runs only ACTIVE flows: a PENDING task with the flow's steps as stages and the version it ran", async () => {
    const { workspaceId, token } = await workspace();
    const flow = await createFlow(token, workspaceId, { name: "Publish", definition: { ...definition, requiredCapabilities: ["browser"] } });
    const draft = errorOf(await server.execute(RunFlowDocument, { input: { flowId: flow.id } }, { token }));
    expect(draft).toMatchObject({ code: "CONFLICT", extensions: { status: "DRAFT" } });
    expect(draft.message).toMatch(/Cannot run flow .*: it is DRAFT, not ACTIVE/);

    ok(await setStatus(token, flow.id, "ACTIVE"));
    const run = ok(await server.execute(RunFlowDocument, { input: { flowId: flow.id, input: { date: "2026-01-01" }, triggeredBy: "webhook" } }, { token })).runFlow;
    expect(run).toMatchObject({
      title: "Publish",
      status: "PENDING",
      flowVersion: 1,
      triggeredBy: "webhook",
      input: { date: "2026-01-01" },
      requiredCapabilities: ["browser"],
      flow: { id: flow.id, name: "Publish", version: 1 },
    });
    expect(run.stages.map((s) => [s.name, s.requiresConfirmation])).toEqual([
      ["fetch", false],
      ["review", true],
      ["publish", false],
    ]);
    expect(run.stages[1]!.prompt).toEqual({ question: "Publish?" });

    ok(await setStatus(token, flow.id, "DRAFT"));
    ok(await server.execute(UpdateFlowDocument, { input: { id: flow.id, definition: { steps: [{ name: "one" }] } } }, { token }));
    ok(await setStatus(token, flow.id, "ACTIVE"));
    const second = ok(await server.execute(RunFlowDocument, { input: { flowId: flow.id } }, { token })).runFlow;
    expect(second).toMatchObject({ flowVersion: 2, triggeredBy: "manual", stages: [{ name: "one" }] });

    await prisma().task.update({ where: { id: run.id }, data: { status: "SUCCEEDED", startedAt: new Date(Date.now() - 1500), finishedAt: new Date(), output: { rows: 3 } } });
    const details = ok(await server.execute(FlowDetailsDocument, { id: flow.id, firstRuns: 10 }, { token })).flow;
    expect(details.runs.totalCount).toBe(2);
    expect(details.runs.edges.map((e) => e.node.id)).toEqual([second.id, run.id]);
    const succeeded = ok(await server.execute(FlowDetailsDocument, { id: flow.id, runStatus: ["SUCCEEDED"] }, { token })).flow.runs.edges.map((e) => e.node);
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]).toMatchObject({ id: run.id, output: { rows: 3 } });
    expect(succeeded[0]!.durationMs).toBeGreaterThanOrEqual(1400);

    ok(await setStatus(token, flow.id, "ARCHIVED"));
    expect(errorOf(await server.execute(RunFlowDocument, { input: { flowId: flow.id } }, { token })).message).toMatch(/it is ARCHIVED/);
    expect(fieldsOf(errorOf(await server.execute(RunFlowDocument, { input: { flowId: flow.id, triggeredBy: "By Hand!" } }, { token })))).toEqual(["input.triggeredBy"]);
  });

  it("runs idempotently with a key", async () => {
    const { workspaceId, token } = await workspace();
    const flow = await createFlow(token, workspaceId);
    ok(await setStatus(token, flow.id, "ACTIVE"));
    const input = { flowId: flow.id, input: { n: 1 }, idempotencyKey: unique("run") };
    const first = ok(await server.execute(RunFlowDocument, { input }, { token })).runFlow;
    const again = ok(await server.execute(RunFlowDocument, { input }, { token })).runFlow;
    expect(again.id).toBe(first.id);
    expect(await prisma().task.count({ where: { flowId: flow.id } })).toBe(1);
  });

  it("lists a workspace's flows by status and search, and hides them from strangers", async () => {
    const { workspaceId, token } = await workspace();
    const a = await createFlow(token, workspaceId, { name: "Daily digest" });
    const b = await createFlow(token, workspaceId, { name: "Cleanup", description: "removes the digest files" });
    const c = await createFlow(token, workspaceId, { name: "Other" });
    ok(await setStatus(token, a.id, "ACTIVE"));
    const list = async (vars: { status?: FlowStatus[]; search?: string }) =>
      ok(await server.execute(WorkspaceFlowsDocument, { workspaceId, ...vars }, { token })).workspace.flows;
    expect((await list({})).edges.map((e) => e.node.id)).toEqual([c.id, b.id, a.id]);
    expect((await list({ status: ["ACTIVE"] })).edges.map((e) => e.node.id)).toEqual([a.id]);
    expect((await list({ search: "DIGEST" })).edges.map((e) => e.node.id)).toEqual([b.id, a.id]);
    expect((await list({ status: ["DRAFT"] })).totalCount).toBe(2);

    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(FlowDetailsDocument, { id: a.id }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(RunFlowDocument, { input: { flowId: a.id } }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(FlowDetailsDocument, { id: randomUUID() }, { token })).code).toBe("NOT_FOUND");
  });

  it("lets workspace admins delete a flow; its runs stay as tasks", async () => {
    const { workspaceId, token } = await workspace();
    const flow = await createFlow(token, workspaceId, { name: "Doomed" });
    ok(await setStatus(token, flow.id, "ACTIVE"));
    const run = ok(await server.execute(RunFlowDocument, { input: { flowId: flow.id } }, { token })).runFlow;
    const member = await signedInUser(server);
    await addMember(server, workspaceId, member.id, "MEMBER");
    const denied = errorOf(await server.execute(DeleteFlowDocument, { id: flow.id }, { token: member.accessToken }));
    expect(denied.code).toBe("FORBIDDEN");
    expect(ok(await server.execute(DeleteFlowDocument, { id: flow.id }, { token })).deleteFlow).toBe(flow.id);
    expect(errorOf(await server.execute(FlowDetailsDocument, { id: flow.id }, { token })).code).toBe("NOT_FOUND");
    const kept = ok(await server.execute(TaskDetailsDocument, { id: run.id }, { token })).task;
    expect(kept).toMatchObject({ title: "Doomed", flow: null, flowVersion: 1 });
    expect(errorOf(await server.execute(DeleteFlowDocument, { id: flow.id }, { token })).code).toBe("NOT_FOUND");
  });

  it("keeps definitionText exactly as sent and takes definition from it when it is one", async () => {
    const { workspaceId, token } = await workspace();
    const text = '{ "steps": [{"name": "fetch"}], "layout": {"zoom": 2} }';
    const flow = await createFlow(token, workspaceId, { definition: undefined, definitionText: text });
    expect(flow).toMatchObject({ definitionText: text, definition: { steps: [{ name: "fetch" }], layout: { zoom: 2 } }, version: 1 });
    // Other JSON (a legacy editor's own format, steps Spindle cannot read) is kept, without steps.
    for (const other of ['{"nodes": []}', "[1, 2]", '{"steps": [{"kind": "x"}]}', '{"steps": [], "bad": "\\u0000"}']) {
      expect(await createFlow(token, workspaceId, { definition: undefined, definitionText: other })).toMatchObject({ definitionText: other, definition: { steps: [] } });
    }
    const notJson = errorOf(await server.execute(CreateFlowDocument, { input: { workspaceId, name: "f", definitionText: "{steps" } }, { token }));
    expect(notJson.code).toBe("VALIDATION");
    expect(fieldsOf(notJson)).toEqual(["input.definitionText"]);
    const both = errorOf(await server.execute(CreateFlowDocument, { input: { workspaceId, name: "f", definition, definitionText: text } }, { token }));
    expect(fieldsOf(both)).toEqual(["input.definitionText"]);

    const update = (input: Record<string, unknown>) => server.execute(UpdateFlowDocument, { input: { id: flow.id, ...input } }, { token });
    expect(ok(await update({ definitionText: text })).updateFlow.version).toBe(1);
    const respaced = ok(await update({ definitionText: '{"steps":[{"name":"fetch"}],"layout":{"zoom":2}}' })).updateFlow;
    expect(respaced).toMatchObject({ version: 2, definitionText: '{"steps":[{"name":"fetch"}],"layout":{"zoom":2}}' });
    const asJson = ok(await update({ definition: respaced.definition })).updateFlow;
    expect(asJson).toMatchObject({ version: 3, definitionText: null, definition: respaced.definition });
  });

  it("creates with a status, and updateFlow moves the status with the other changes in one transaction", async () => {
    const { workspaceId, token } = await workspace();
    const flow = await createFlow(token, workspaceId, { status: "ACTIVE" });
    expect(flow.status).toBe("ACTIVE");
    const update = (input: Record<string, unknown>) => server.execute(UpdateFlowDocument, { input: { id: flow.id, ...input } }, { token });
    expect(ok(await update({ status: "ACTIVE", name: "same status" })).updateFlow).toMatchObject({ status: "ACTIVE", name: "same status" });
    expect(ok(await update({ status: "ARCHIVED", name: "last words" })).updateFlow).toMatchObject({ status: "ARCHIVED", name: "last words" });
    const refused = errorOf(await update({ status: "ACTIVE", name: "lost" }));
    expect(refused).toMatchObject({ code: "CONFLICT", extensions: { status: "ARCHIVED" } });
    expect(await prisma().flow.findUniqueOrThrow({ where: { id: flow.id } })).toMatchObject({ status: "ARCHIVED", name: "last words" });
    expect(ok(await update({ status: "DRAFT", name: "back" })).updateFlow).toMatchObject({ status: "DRAFT", name: "back" });
    const audit = await prisma().auditEntry.findMany({ where: { targetId: flow.id, action: "flow.update" }, orderBy: { at: "asc" } });
    expect(audit.map((a) => (a.data as { status?: unknown }).status ?? null)).toEqual([null, { from: "ACTIVE", to: "ARCHIVED" }, { from: "ARCHIVED", to: "DRAFT" }]);
  });

  describe("recordFlowRun", () => {
    const record = (token: string, input: RecordFlowRunInput) => server.execute(RecordFlowRunDocument, { input }, { token });

    it("records a run executed elsewhere as it stands, audited, with an open log", async () => {
      const { workspaceId, token, owner } = await workspace();
      const flow = await createFlow(token, workspaceId, { name: "Elsewhere", status: "ACTIVE" });
      const run = ok(
        await record(token, {
          flowId: flow.id,
          status: "SUCCEEDED",
          startedAt: "2026-01-01T00:00:00.000Z",
          finishedAt: "2026-01-01T00:00:01.240Z",
          output: { rows: 3 },
          input: { date: "2026-01-01" },
          triggeredBy: "schedule",
        }),
      ).recordFlowRun;
      expect(run).toMatchObject({
        title: "Elsewhere",
        status: "SUCCEEDED",
        flowVersion: 1,
        triggeredBy: "schedule",
        input: { date: "2026-01-01" },
        output: { rows: 3 },
        error: null,
        startedAt: "2026-01-01T00:00:00.000Z",
        finishedAt: "2026-01-01T00:00:01.240Z",
        durationMs: 1240,
        attempt: 0,
        machine: null,
        flow: { id: flow.id },
        stages: [],
      });
      const event = await prisma().taskEvent.findFirstOrThrow({ where: { taskId: run.id } });
      expect(event).toMatchObject({ type: "task.created", message: 'Run of flow "Elsewhere" recorded as SUCCEEDED (executed elsewhere)' });
      const audit = await prisma().auditEntry.findMany({ where: { targetId: flow.id, action: "flow.recordRun" } });
      expect(audit.map((a) => [a.userId, a.data])).toEqual([[owner.id, { taskId: run.id, version: 1, status: "SUCCEEDED" }]]);
      const logged = await server.execute(AppendLogsDocument, { input: { source: { type: "TASK", id: run.id }, sequence: "1", lines: [{ level: "INFO", message: "afterwards" }] } }, { token });
      expect(ok(logged).appendLogs.count).toBe(1);

      const failed = ok(await record(token, { flowId: flow.id, status: "FAILED", error: "boom" })).recordFlowRun;
      expect(failed).toMatchObject({ status: "FAILED", error: "boom", triggeredBy: "manual", durationMs: 0 });
      expect(failed.startedAt).toBe(failed.finishedAt);
    });

    it("records a RUNNING run that no machine claims", async () => {
      const { workspaceId, token } = await workspace();
      const flow = await createFlow(token, workspaceId, { status: "ACTIVE" });
      const run = ok(await record(token, { flowId: flow.id, status: "RUNNING" })).recordFlowRun;
      expect(run).toMatchObject({ status: "RUNNING", finishedAt: null, durationMs: null, machine: null });
      const machine = await createMachineDirect(server, workspaceId);
      expect(ok(await server.execute(ClaimTasksDocument, { input: { limit: 20 } }, { token: machine.credential })).claimTasks).toEqual([]);
    });

    it("refuses what did not happen, naming the field; ARCHIVED flows; strangers", async () => {
      const { workspaceId, token } = await workspace();
      const flow = await createFlow(token, workspaceId);
      const refusals: [Partial<RecordFlowRunInput>, string][] = [
        [{ status: "PENDING" }, "input.status"],
        [{ status: "SUSPENDED" }, "input.status"],
        [{ status: "RUNNING", finishedAt: "2026-01-01T00:00:00Z" }, "input.finishedAt"],
        [{ startedAt: "2026-01-01T00:00:10Z", finishedAt: "2026-01-01T00:00:00Z" }, "input.finishedAt"],
        [{ startedAt: new Date(Date.now() + 3_600_000).toISOString() }, "input.startedAt"],
        [{ finishedAt: "1960-01-01T00:00:00Z" }, "input.finishedAt"],
        [{ triggeredBy: "Cron Job" }, "input.triggeredBy"],
        [{ output: { blob: "x".repeat(257 * 1024) } }, "input.output"],
        [{ error: "a\u0000b" }, "input.error"],
      ];
      for (const [input, field] of refusals) {
        const error = errorOf(await record(token, { flowId: flow.id, status: "SUCCEEDED", ...input }));
        expect({ input, code: error.code, fields: fieldsOf(error) }).toEqual({ input, code: "VALIDATION", fields: [field] });
      }
      ok(await setStatus(token, flow.id, "ARCHIVED"));
      expect(errorOf(await record(token, { flowId: flow.id, status: "SUCCEEDED" }))).toMatchObject({ code: "CONFLICT", extensions: { status: "ARCHIVED" } });
      const stranger = await signedInUser(server);
      expect(errorOf(await record(stranger.accessToken, { flowId: flow.id, status: "SUCCEEDED" })).code).toBe("NOT_FOUND");
      expect(errorOf(await record(token, { flowId: "nope", status: "SUCCEEDED" })).code).toBe("NOT_FOUND");
      expect(await prisma().task.count({ where: { workspaceId } })).toBe(0);
    });

    it("records once per idempotency key", async () => {
      const { workspaceId, token } = await workspace();
      const flow = await createFlow(token, workspaceId);
      const input = { flowId: flow.id, status: "SUCCEEDED" as const, finishedAt: "2026-01-01T00:00:00Z", idempotencyKey: unique("k") };
      const first = ok(await record(token, input)).recordFlowRun;
      expect(ok(await record(token, input)).recordFlowRun.id).toBe(first.id);
      expect(errorOf(await record(token, { ...input, status: "FAILED" })).code).toBe("CONFLICT");
      expect(await prisma().task.count({ where: { workspaceId } })).toBe(1);
    });
  });

  it("runs as many statements for 100 flows with their runs as for 10", async () => {
    const { workspaceId, token } = await workspace();
    const flowIds = Array.from({ length: 105 }, () => randomUUID());
    await prisma().flow.createMany({ data: flowIds.map((id, i) => ({ id, workspaceId, name: `f${i}`, definition: { steps: [] } })) });
    const taskIds = flowIds.flatMap((flowId) => [0, 1, 2, 3].map(() => ({ id: randomUUID(), flowId })));
    await prisma().task.createMany({ data: taskIds.map(({ id, flowId }) => ({ id, flowId, workspaceId, title: "run", flowVersion: 1 })) });
    await prisma().taskStage.createMany({ data: taskIds.map(({ id }) => ({ taskId: id, index: 0, name: "step" })) });
    const count = async (first: number) => {
      const before = server.db.statements.count;
      const edges = ok(await server.execute(WorkspaceFlowsDeepDocument, { workspaceId, first }, { token })).workspace.flows.edges;
      expect(edges).toHaveLength(first);
      expect(edges.every((e) => e.node.runs.totalCount === 4 && e.node.runs.edges.length === 3 && e.node.runs.edges[0]!.node.stages.length === 1)).toBe(true);
      return server.db.statements.count - before;
    };
    await count(10); // the first request also checks the token in the database; later ones find it cached
    expect(await count(100)).toBe(await count(10));
  });
});
