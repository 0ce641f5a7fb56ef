// Stored logs are read through the object that logged: whoever can read the worker reads its lines.
// Lines are appended by the machine the worker is assigned to, or by members who may change it.
import { unique } from "../../helpers/factories.js";
import { read, write, type Expectation, type MatrixCase, type World } from "../world.js";

const writeOrAssignedMachine: Expectation = { ...write, machine: "ok" };

async function assignedWorker(world: World) {
  return world.server.db.prisma.worker.create({
    data: { workspaceId: world.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx", machineId: world.machine.id },
  });
}

/** A worker whose log holds one line, "hello". */
async function loggedWorker(world: World) {
  const prisma = world.server.db.prisma;
  const worker = await prisma.worker.create({ data: { workspaceId: world.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx" } });
  await prisma.logSource.create({ data: { sourceId: worker.id, sourceType: "WORKER", workspaceId: world.workspaceId, lastCursor: 1n } });
  await prisma.logLine.create({ data: { sourceId: worker.id, cursor: 1n, level: "INFO", message: "hello" } });
  return { id: worker.id };
}

export const cases: MatrixCase[] = [
  {
    field: "Query.logLines",
    setup: loggedWorker,
    request: (_w, f) => ({
      query: "query($i: LogLinesInput!) { logLines(input: $i) { lines { cursor message } } }",
      variables: { i: { source: { type: "WORKER", id: f.id } } },
    }),
    expect: read,
    check: (data) => {
      if (data.logLines.lines[0]?.message !== "hello") throw new Error("the line was not read");
    },
  },
  {
    field: "Subscription.logs",
    setup: loggedWorker,
    request: (_w, f) => ({
      query: "subscription($s: LogSourceInput!) { logs(source: $s) { lines { message } } }",
      variables: { s: { type: "WORKER", id: f.id } },
    }),
    expect: read,
    check: (data) => {
      if (data.logs.lines[0]?.message !== "hello") throw new Error("the stored line was not sent");
    },
  },
  {
    field: "Mutation.appendLogs",
    setup: async (world) => ({ id: (await assignedWorker(world)).id }),
    request: (_w, f) => ({
      query: "mutation($i: AppendLogsInput!) { appendLogs(input: $i) { firstCursor lastCursor } }",
      variables: { i: { source: { type: "WORKER", id: f.id }, sequence: "1", lines: [{ level: "INFO", message: "hello" }] } },
    }),
    expect: writeOrAssignedMachine,
    check: (data) => {
      if (data.appendLogs.firstCursor !== "1") throw new Error("the line did not get cursor 1");
    },
  },
];
