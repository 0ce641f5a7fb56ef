// Tasks: reading needs a role in the workspace, changing needs member or above; claiming and
// reporting are for the machine's credential alone, on tasks it holds. Each actor gets its own task.
import { randomUUID } from "node:crypto";
import type { TaskStatus } from "../../../src/generated/prisma/client.js";
import { unique } from "../../helpers/factories.js";
import { machineOnly, read, write, type Fixture, type MatrixCase, type World } from "../world.js";

/** A task of the world's workspace; with `held`, the world's machine holds it with a live lease. */
async function freshTask(world: World, status: TaskStatus = "PENDING", held = false): Promise<Fixture> {
  const leaseToken = randomUUID();
  const task = await world.server.db.prisma.task.create({
    data: {
      workspaceId: world.workspaceId,
      title: unique("matrix"),
      status,
      currentStage: status === "SUSPENDED" ? 0 : null,
      ...(held ? { machineId: world.machine.id, attempt: 1, leaseToken, leaseExpiresAt: new Date(Date.now() + 600_000) } : {}),
      stages: { create: [{ index: 0, name: "gate", requiresConfirmation: true, status: status === "SUSPENDED" ? "SUSPENDED" : "PENDING" }] },
    },
  });
  return { id: task.id, leaseToken };
}

const onlyOwn = (data: any, world: World) => {
  const nodes: { workspaceId: string }[] = data.claimTasks ?? data.assignedTasks.edges.map((e: any) => e.node);
  if (nodes.some((n) => n.workspaceId !== world.workspaceId)) throw new Error("a machine saw a task of another workspace");
};

const byMachine = (field: string, status: TaskStatus, input: string, extra: Record<string, unknown> = {}, selection = "id status"): MatrixCase => ({
  field: `Mutation.${field}`,
  setup: (w) => freshTask(w, status, true),
  request: (_w, f) => ({
    query: `mutation($i: ${input}!) { ${field}(input: $i) { ${selection} } }`,
    variables: { i: { taskId: f.id, leaseToken: f.leaseToken, ...extra } },
  }),
  expect: machineOnly,
});

export const cases: MatrixCase[] = [
  {
    field: "Query.task",
    setup: (w) => freshTask(w),
    request: (_w, f) => ({
      query: "query($id: ID!) { task(id: $id) { id leaseToken stages { name } events(first: 3) { totalCount } } }",
      variables: { id: f.id },
    }),
    expect: read,
    check: (data, _a, _w, f) => {
      if (data.task.id !== f.id || data.task.leaseToken !== null) throw new Error("wrong task, or a lease token shown to a user");
    },
  },
  {
    field: "Query.taskStats",
    request: (w) => ({ query: "query($w: ID!) { taskStats(workspaceId: $w) { total byStatus { status count } } }", variables: { w: w.workspaceId } }),
    expect: read,
  },
  {
    field: "Query.assignedTasks",
    setup: (w) => freshTask(w, "RUNNING", true),
    request: () => ({ query: "{ assignedTasks(first: 50) { edges { node { id workspaceId leaseToken } } } }" }),
    expect: machineOnly,
    check: (data, _a, w, f) => {
      onlyOwn(data, w);
      const mine = data.assignedTasks.edges.find((e: any) => e.node.id === f.id);
      if (!mine || mine.node.leaseToken !== f.leaseToken) throw new Error("the machine does not see its own task and lease");
    },
  },
  {
    field: "Mutation.createTask",
    request: (w) => ({
      query: "mutation($i: CreateTaskInput!) { createTask(input: $i) { id workspaceId } }",
      variables: { i: { workspaceId: w.workspaceId, title: unique("new"), stages: [{ name: "one" }] } },
    }),
    expect: write,
  },
  {
    field: "Mutation.updateTask",
    setup: (w) => freshTask(w),
    request: (_w, f) => ({ query: "mutation($i: UpdateTaskInput!) { updateTask(input: $i) { id priority } }", variables: { i: { id: f.id, priority: "HIGH" } } }),
    expect: write,
  },
  {
    field: "Mutation.cancelTask",
    setup: (w) => freshTask(w),
    request: (_w, f) => ({ query: "mutation($id: ID!) { cancelTask(id: $id, reason: \"matrix\") { id status } }", variables: { id: f.id } }),
    expect: write,
  },
  {
    field: "Mutation.retryTask",
    setup: (w) => freshTask(w, "FAILED"),
    request: (_w, f) => ({ query: "mutation($id: ID!) { retryTask(id: $id) { id status } }", variables: { id: f.id } }),
    expect: write,
  },
  {
    field: "Mutation.confirmTaskStage",
    setup: (w) => freshTask(w, "SUSPENDED", true),
    request: (_w, f) => ({
      query: "mutation($i: ConfirmTaskStageInput!) { confirmTaskStage(input: $i) { id status } }",
      variables: { i: { taskId: f.id, stageIndex: 0, result: "yes" } },
    }),
    expect: write,
  },
  {
    field: "Mutation.claimTasks",
    setup: (w) => freshTask(w),
    request: () => ({ query: "mutation { claimTasks(input: { limit: 20 }) { id workspaceId leaseToken } }" }),
    expect: machineOnly,
    check: (data, _a, w) => onlyOwn(data, w),
  },
  byMachine("startTask", "ASSIGNED", "StartTaskInput"),
  byMachine("reportTaskStage", "RUNNING", "ReportTaskStageInput", { stageIndex: 0, status: "RUNNING" }),
  byMachine("completeTask", "RUNNING", "CompleteTaskInput", { output: { ok: true } }),
  byMachine("failTask", "RUNNING", "FailTaskInput", { error: "matrix" }),
  byMachine("addTaskEvent", "RUNNING", "AddTaskEventInput", { type: "log", message: "hello" }, "id type"),
];
