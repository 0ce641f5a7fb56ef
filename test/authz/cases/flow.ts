// Flows: reading needs a role in the workspace, editing, running and recording runs need member or above, deleting
// needs admin. Machines have no business here. Each actor gets its own flow.
import type { FlowStatus } from "../../../src/generated/prisma/client.js";
import { unique } from "../../helpers/factories.js";
import { admin, read, write, type Fixture, type MatrixCase, type World } from "../world.js";

async function freshFlow(world: World, status: FlowStatus = "DRAFT"): Promise<Fixture> {
  const flow = await world.server.db.prisma.flow.create({
    data: { workspaceId: world.workspaceId, name: unique("flow"), status, definition: { steps: [{ name: "one" }] } },
  });
  return { id: flow.id };
}

export const cases: MatrixCase[] = [
  {
    field: "Query.flow",
    setup: (w) => freshFlow(w),
    request: (_w, f) => ({ query: "query($id: ID!) { flow(id: $id) { id runs(first: 2) { totalCount } } }", variables: { id: f.id } }),
    expect: read,
  },
  {
    field: "Mutation.createFlow",
    request: (w) => ({
      query: "mutation($i: CreateFlowInput!) { createFlow(input: $i) { id status } }",
      variables: { i: { workspaceId: w.workspaceId, name: unique("flow"), definition: { steps: [] } } },
    }),
    expect: write,
  },
  {
    field: "Mutation.updateFlow",
    setup: (w) => freshFlow(w),
    request: (_w, f) => ({ query: "mutation($i: UpdateFlowInput!) { updateFlow(input: $i) { id version } }", variables: { i: { id: f.id, name: "renamed" } } }),
    expect: write,
  },
  {
    field: "Mutation.setFlowStatus",
    setup: (w) => freshFlow(w),
    request: (_w, f) => ({ query: "mutation($id: ID!) { setFlowStatus(id: $id, status: ACTIVE) { id status } }", variables: { id: f.id } }),
    expect: write,
  },
  {
    field: "Mutation.runFlow",
    setup: (w) => freshFlow(w, "ACTIVE"),
    request: (_w, f) => ({ query: "mutation($i: RunFlowInput!) { runFlow(input: $i) { id flowVersion } }", variables: { i: { flowId: f.id } } }),
    expect: write,
  },
  {
    field: "Mutation.recordFlowRun",
    setup: (w) => freshFlow(w, "ACTIVE"),
    request: (_w, f) => ({
      query: "mutation($i: RecordFlowRunInput!) { recordFlowRun(input: $i) { id status } }",
      variables: { i: { flowId: f.id, status: "SUCCEEDED", output: { rows: 3 } } },
    }),
    expect: write,
  },
  {
    field: "Mutation.deleteFlow",
    setup: (w) => freshFlow(w),
    request: (_w, f) => ({ query: "mutation($id: ID!) { deleteFlow(id: $id) }", variables: { id: f.id } }),
    expect: admin,
  },
];
