// Agents: made on a machine within its maxAgents, renamed, reported by their machine, removed; tasks
// that target an agent target its machine, so only that machine claims them; every change is an
// agent.status event of the workspace stream.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addMember, createMachineDirect, machineSecrets } from "../authz/world.js";
import {
  AgentDocument,
  AgentTasksDocument,
  ClaimTasksDocument,
  CreateAgentDocument,
  CreateMachineDocument,
  CreateTaskDocument,
  DeleteAgentDocument,
  MachineAgentsDocument,
  SetAgentStatusDocument,
  UpdateAgentDocument,
  UpdateTaskDocument,
  WorkspaceAgentsDocument,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function team() {
  const { owner, workspaceId } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, workspaceId);
  return { workspaceId, token: owner.accessToken, machine };
}

async function createAgent(token: string, machineId: string, name = unique("agent")) {
  return ok(await server.execute(CreateAgentDocument, { input: { machineId, name } }, { token })).createAgent;
}

describe(`agents (${backend})`, () => {
  it("are made on a machine, renamed, listed, reported by their machine and removed, each change an agent.status event", async () => {
    const t = await team();
    const agent = await createAgent(t.token, t.machine.id, "coder");
    expect(agent).toMatchObject({ workspaceId: t.workspaceId, machineId: t.machine.id, name: "coder", status: "OFFLINE", description: null });

    const renamed = ok(await server.execute(UpdateAgentDocument, { input: { id: agent.id, name: "reviewer", description: "reads diffs" } }, { token: t.token }));
    expect(renamed.updateAgent).toMatchObject({ name: "reviewer", description: "reads diffs" });

    // The machine reports its own agent's status; the agent of another machine does not exist for it.
    const reported = ok(await server.execute(SetAgentStatusDocument, { id: agent.id, status: "IDLE" }, { token: t.machine.credential }));
    expect(reported.setAgentStatus.status).toBe("IDLE");
    const other = await createMachineDirect(server, t.workspaceId);
    expect(errorOf(await server.execute(SetAgentStatusDocument, { id: agent.id, status: "BUSY" }, { token: other.credential })).code).toBe("NOT_FOUND");

    const listed = ok(await server.execute(WorkspaceAgentsDocument, { workspaceId: t.workspaceId, status: ["IDLE"] }, { token: t.token }));
    expect(listed.workspace?.agents.edges.map((e) => e.node.id)).toEqual([agent.id]);
    const onMachine = ok(await server.execute(MachineAgentsDocument, { id: t.machine.id }, { token: t.token }));
    expect(onMachine.machine?.agents).toEqual([{ id: agent.id, name: "reviewer", status: "IDLE" }]);

    expect(ok(await server.execute(DeleteAgentDocument, { id: agent.id }, { token: t.token })).deleteAgent).toBe(agent.id);
    expect(errorOf(await server.execute(AgentDocument, { id: agent.id }, { token: t.token })).code).toBe("NOT_FOUND");

    const events = await server.db.prisma.workspaceEvent.findMany({ where: { workspaceId: t.workspaceId, subjectType: "AGENT" }, orderBy: { cursor: "asc" } });
    expect(events.map((e) => [e.type, (e.data as { action: string; status: string }).action, (e.data as { status: string }).status])).toEqual([
      ["agent.status", "created", "OFFLINE"],
      ["agent.status", "updated", "OFFLINE"],
      ["agent.status", "status", "IDLE"],
      ["agent.status", "deleted", "OFFLINE"],
    ]);
  });

  it("refuses a taken name on the machine, a machine past its maxAgents, and bad input, naming the field", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const created = ok(
      await server.execute(CreateMachineDocument, { input: { workspaceId, name: unique("m"), maxAgents: 1 } }, { token: owner.accessToken }),
    ).createMachine;
    const machineId = created.machine.id;
    await createAgent(owner.accessToken, machineId, "one");
    const full = errorOf(await server.execute(CreateAgentDocument, { input: { machineId, name: "two" } }, { token: owner.accessToken }));
    expect(full).toMatchObject({ code: "CONFLICT", extensions: { fields: [{ field: "input.machineId" }] } });

    const t = await team();
    await createAgent(t.token, t.machine.id, "same");
    const taken = errorOf(await server.execute(CreateAgentDocument, { input: { machineId: t.machine.id, name: "same" } }, { token: t.token }));
    expect(taken).toMatchObject({ code: "CONFLICT", extensions: { fields: [{ field: "input.name", message: "already taken on this machine" }] } });

    const bad = errorOf(await server.execute(CreateAgentDocument, { input: { machineId: "not-a-uuid", name: "" } }, { token: t.token }));
    expect(bad.code).toBe("VALIDATION");
    expect(bad.extensions.fields.map((f: { field: string }) => f.field).sort()).toEqual(["input.machineId", "input.name"]);
    expect(await server.db.prisma.agent.count({ where: { machineId: t.machine.id } })).toBe(1);
  });

  it("hides agents from strangers and keeps viewers from changing them", async () => {
    const t = await team();
    const agent = await createAgent(t.token, t.machine.id);
    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(AgentDocument, { id: agent.id }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(CreateAgentDocument, { input: { machineId: t.machine.id, name: "x" } }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    const viewer = await signedInUser(server);
    await addMember(server, t.workspaceId, viewer.id, "VIEWER");
    expect(ok(await server.execute(AgentDocument, { id: agent.id }, { token: viewer.accessToken })).agent?.id).toBe(agent.id);
    expect(errorOf(await server.execute(DeleteAgentDocument, { id: agent.id }, { token: viewer.accessToken })).code).toBe("FORBIDDEN");
  });

  it("targets a task at an agent: only the agent's machine claims it, and the task lists by agent", async () => {
    const t = await team();
    const agent = await createAgent(t.token, t.machine.id);
    const task = ok(
      await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: unique("task"), targetAgentId: agent.id } }, { token: t.token }),
    ).createTask;
    expect(task).toMatchObject({ targetMachineId: t.machine.id });

    const listed = ok(await server.execute(AgentTasksDocument, { workspaceId: t.workspaceId, targetAgentId: agent.id }, { token: t.token }));
    expect(listed.workspace?.tasks.edges.map((e) => e.node)).toEqual([
      { id: task.id, targetAgentId: agent.id, targetMachineId: t.machine.id, targetAgent: { id: agent.id, name: agent.name } },
    ]);

    // Another machine of the workspace does not get it; the agent's machine does.
    const other = await createMachineDirect(server, t.workspaceId);
    expect(ok(await server.execute(ClaimTasksDocument, { input: { limit: 5 } }, { token: other.credential })).claimTasks).toEqual([]);
    const claimed = ok(await server.execute(ClaimTasksDocument, { input: { limit: 5 } }, { token: t.machine.credential })).claimTasks;
    expect(claimed.map((c) => c.id)).toEqual([task.id]);
  });

  it("refuses an agent of another workspace, or one on another machine than targetMachineId", async () => {
    const t = await team();
    const elsewhere = await team();
    const foreign = await createAgent(elsewhere.token, elsewhere.machine.id);
    const refused = errorOf(
      await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: "x", targetAgentId: foreign.id } }, { token: t.token }),
    );
    expect(refused).toMatchObject({ code: "VALIDATION", extensions: { fields: [{ field: "input.targetAgentId", message: "no such agent in this workspace" }] } });

    const agent = await createAgent(t.token, t.machine.id);
    const other = await createMachineDirect(server, t.workspaceId);
    const mismatch = errorOf(
      await server.execute(
        CreateTaskDocument,
        { input: { workspaceId: t.workspaceId, title: "x", targetAgentId: agent.id, targetMachineId: other.id } },
        { token: t.token },
      ),
    );
    expect(mismatch).toMatchObject({ code: "VALIDATION", extensions: { fields: [{ field: "input.targetMachineId" }] } });

    // Retargeting a pending task at an agent moves it to the agent's machine.
    const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: "y", targetMachineId: other.id } }, { token: t.token })).createTask;
    const moved = ok(await server.execute(UpdateTaskDocument, { input: { id: task.id, targetAgentId: agent.id } }, { token: t.token })).updateTask;
    expect(moved).toMatchObject({ targetMachineId: t.machine.id });
  });
});

describe(`statement counts (${backend})`, () => {
  // A workspace's agents with the machine each lives on: its derived status and its other agents.
  const AGENTS_WITH_MACHINES = /* GraphQL */ `
    query NPlusOneAgents($id: ID!, $first: Int!) {
      workspace(id: $id) {
        agents(first: $first) {
          totalCount
          edges { node { id workspaceId machineId name description status createdAt updatedAt machine { id name status online maxAgents agents { id name status } } } }
          pageInfo { hasNextPage endCursor }
        }
      }
    }
  `;

  it("runs the same number of SQL statements for 10 and 100 agents with their machines", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const prisma = server.db.prisma;
    // 55 machines (every third one silent for an hour), two agents on each.
    const machines = Array.from({ length: 55 }, (_, i) => {
      return {
        id: randomUUID(),
        workspaceId,
        name: `m${i}`,
        ...machineSecrets().columns,
        lastHeartbeatAt: new Date(Date.now() - (i % 3 ? 0 : 3600_000)),
        maxAgents: 4,
      };
    });
    await prisma.machine.createMany({ data: machines });
    const statuses = ["IDLE", "BUSY", "OFFLINE"] as const;
    await prisma.agent.createMany({
      data: Array.from({ length: 110 }, (_, i) => ({
        workspaceId,
        machineId: machines[i % 55]!.id,
        name: `a${i}`,
        description: i % 2 ? `agent ${i}` : null,
        status: statuses[i % 3]!,
        createdAt: new Date(Date.now() - (110 - i) * 1000),
      })),
    });

    type Agent = { name: string; machineId: string; machine: { id: string; name: string; status: string; online: boolean; maxAgents: number; agents: { name: string }[] } };
    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.post({ query: AGENTS_WITH_MACHINES, variables: { id: workspaceId, first } }, { token: owner.accessToken }));
      const statements = server.db.statements.count - before;
      expect(data.workspace.agents.totalCount).toBe(110);
      const agents: Agent[] = data.workspace.agents.edges.map((e: { node: Agent }) => e.node);
      // Oldest first, each with its own machine and that machine's two agents.
      expect(agents.map((a) => a.name)).toEqual(Array.from({ length: first }, (_, i) => `a${i}`));
      agents.forEach((agent, i) => {
        expect(agent.machine).toMatchObject({ id: agent.machineId, name: `m${i % 55}`, online: i % 55 % 3 !== 0, maxAgents: 4 });
        expect(agent.machine.agents.map((a) => a.name)).toEqual([`a${i % 55}`, `a${(i % 55) + 55}`]);
      });
      return statements;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
