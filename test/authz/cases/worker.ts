// Workers: reading needs a role in the workspace, changing needs member or up, reports come only
// from the worker's own machine. Each actor gets a fresh worker in the state its operation needs.
import type { WorkerStatus } from "../../../src/generated/prisma/client.js";
import { unique } from "../../helpers/factories.js";
import { machineOnly, read, write, type MatrixCase, type World } from "../world.js";

async function worker(world: World, status: WorkerStatus = "DEPLOYING") {
  const prisma = world.server.db.prisma;
  const block = await prisma.graphBlock.create({ data: { workspaceId: world.workspaceId, id: unique("node_"), type: "code.worker", label: "w" } });
  const row = await prisma.worker.create({
    data: { workspaceId: world.workspaceId, kind: "CODE", name: unique("w"), blockId: block.id, code: "pass", status, machineId: world.machine.id },
  });
  return { id: row.id, blockId: block.id };
}

const byId = (field: string, status: WorkerStatus): MatrixCase => ({
  field: `Mutation.${field}`,
  setup: (world) => worker(world, status),
  request: (_w, f) => ({ query: `mutation($id: ID!) { ${field}(id: $id) { id status } }`, variables: { id: f.id } }),
  expect: write,
});

export const cases: MatrixCase[] = [
  {
    field: "Query.worker",
    setup: (world) => worker(world),
    request: (_w, f) => ({ query: "query($id: ID!) { worker(id: $id) { id machine { id } transitions(first: 2) { totalCount } } }", variables: { id: f.id } }),
    expect: read,
  },
  {
    field: "Query.workerByBlock",
    setup: (world) => worker(world),
    request: (w, f) => ({
      query: "query($ws: ID!, $b: String!) { workerByBlock(workspaceId: $ws, blockId: $b) { id } }",
      variables: { ws: w.workspaceId, b: f.blockId },
    }),
    expect: read,
    check: (data, _a, _w, f) => {
      if (data.workerByBlock?.id !== f.id) throw new Error("workerByBlock did not find the block's worker");
    },
  },
  {
    field: "Query.assignedWorkers",
    setup: (world) => worker(world),
    request: () => ({ query: "{ assignedWorkers { id workspaceId } }" }),
    expect: machineOnly,
    check: (data, _a, w) => {
      if (data.assignedWorkers.some((x: { workspaceId: string }) => x.workspaceId !== w.workspaceId)) throw new Error("foreign worker assigned");
    },
  },
  {
    field: "Mutation.deployWorker",
    request: (w) => ({
      query: "mutation($i: DeployWorkerInput!) { deployWorker(input: $i) { id } }",
      variables: { i: { workspaceId: w.workspaceId, kind: "CONTAINER", name: unique("c"), image: "nginx" } },
    }),
    expect: write,
  },
  byId("startWorker", "STOPPED"),
  byId("stopWorker", "RUNNING"),
  byId("restartWorker", "RUNNING"),
  byId("destroyWorker", "STOPPED"),
  {
    field: "Mutation.redeployWorker",
    setup: (world) => worker(world, "RUNNING"),
    request: (_w, f) => ({ query: "mutation($i: RedeployWorkerInput!) { redeployWorker(input: $i) { id revision } }", variables: { i: { id: f.id, code: "pass # 2" } } }),
    expect: write,
  },
  {
    field: "Mutation.updateWorkerSettings",
    setup: (world) => worker(world, "RUNNING"),
    request: (_w, f) => ({
      query: "mutation($i: UpdateWorkerSettingsInput!) { updateWorkerSettings(input: $i) { id } }",
      variables: { i: { id: f.id, tickIntervalSeconds: 30 } },
    }),
    expect: write,
  },
  {
    field: "Mutation.reportWorkerStatus",
    setup: (world) => worker(world, "DEPLOYING"),
    request: (_w, f) => ({
      query: "mutation($i: ReportWorkerStatusInput!) { reportWorkerStatus(input: $i) { id status } }",
      variables: { i: { workerId: f.id, revision: 1, status: "RUNNING" } },
    }),
    expect: machineOnly,
  },
  {
    field: "Mutation.reportWorkerTicks",
    setup: (world) => worker(world, "RUNNING"),
    request: (_w, f) => ({
      query: "mutation($i: ReportWorkerTicksInput!) { reportWorkerTicks(input: $i) { id tickCount } }",
      variables: { i: { workerId: f.id, revision: 1, ticks: 3, errors: 0 } },
    }),
    expect: machineOnly,
  },
];
