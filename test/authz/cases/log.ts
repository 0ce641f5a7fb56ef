// Stored logs are read through the object that logged: whoever can read the worker reads its lines.
import { unique } from "../../helpers/factories.js";
import { read, type MatrixCase } from "../world.js";

export const cases: MatrixCase[] = [
  {
    field: "Query.logLines",
    setup: async (world) => {
      const prisma = world.server.db.prisma;
      const worker = await prisma.worker.create({ data: { workspaceId: world.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx" } });
      await prisma.logSource.create({ data: { sourceId: worker.id, sourceType: "WORKER", workspaceId: world.workspaceId, lastCursor: 1n } });
      await prisma.logLine.create({ data: { sourceId: worker.id, cursor: 1n, level: "INFO", message: "hello" } });
      return { id: worker.id };
    },
    request: (_w, f) => ({
      query: "query($i: LogLinesInput!) { logLines(input: $i) { lines { cursor message } } }",
      variables: { i: { source: { type: "WORKER", id: f.id } } },
    }),
    expect: read,
    check: (data) => {
      if (data.logLines.lines[0]?.message !== "hello") throw new Error("the line was not read");
    },
  },
];
