// The workspace event stream and the status streams: whoever reads the workspace may watch them (a
// stranger gets NOT_FOUND, as for the objects themselves); workspace admins post events.
import { unique } from "../../helpers/factories.js";
import { admin, machineOnly, read, type MatrixCase, type World } from "../world.js";

/** One stored event, through the mutation, so the stream from cursor 0 has something to send. */
async function storedEvent(world: World) {
  const res = await world.server.post(
    {
      query: "mutation($i: PublishWorkspaceEventInput!) { publishWorkspaceEvent(input: $i) { cursor } }",
      variables: { i: { workspaceId: world.workspaceId, type: "notification", data: { text: "matrix" } } },
    },
    { token: world.tokens.owner },
  );
  if (res.errors?.length) throw new Error(`publishing failed: ${JSON.stringify(res.errors)}`);
  return {};
}

const prisma = (world: World) => world.server.db.prisma;

/** A status subscription on an object of the world's workspace, made by `create`: its first item is the object now. */
const statusCase = (field: string, create: (world: World) => Promise<{ id: string }>): MatrixCase => ({
  field: `Subscription.${field}`,
  setup: async (world) => ({ id: (await create(world)).id }),
  request: (_w, f) => ({ query: `subscription($id: ID!) { ${field}(id: $id) { id } }`, variables: { id: f.id } }),
  expect: read,
  check: (data, _actor, _w, f) => {
    if (data[field].id !== f.id) throw new Error(`${field} sent another object`);
  },
});

export const cases: MatrixCase[] = [
  {
    field: "Mutation.publishWorkspaceEvent",
    request: (world) => ({
      query: "mutation($i: PublishWorkspaceEventInput!) { publishWorkspaceEvent(input: $i) { cursor type } }",
      variables: { i: { workspaceId: world.workspaceId, type: "notification", data: { text: "matrix" } } },
    }),
    expect: admin,
  },
  {
    field: "Subscription.events",
    setup: storedEvent,
    request: (world) => ({
      query: 'subscription($ws: ID!) { events(workspaceId: $ws, after: "0") { workspaceId cursor } }',
      variables: { ws: world.workspaceId },
    }),
    expect: read,
    check: (data, _actor, world) => {
      if (data.events.workspaceId !== world.workspaceId) throw new Error("an event of another workspace");
    },
  },
  statusCase("workerStatus", (world) =>
    prisma(world).worker.create({ data: { workspaceId: world.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx" } }),
  ),
  statusCase("taskStatus", (world) => prisma(world).task.create({ data: { workspaceId: world.workspaceId, title: unique("t") } })),
  statusCase("machineStatus", async (world) => ({ id: world.machine.id })),
  {
    // The machines' push channel: a machine's own, about itself only.
    field: "Subscription.machineAssignments",
    request: () => ({ query: "subscription { machineAssignments { machine { id workspaceId } claimable } }" }),
    expect: machineOnly,
    check: (data, _actor, world) => {
      if (data.machineAssignments.machine.id !== world.machine.id) throw new Error("assignments of another machine");
    },
  },
  statusCase("deploymentStatus", (world) => prisma(world).deployment.create({ data: { workspaceId: world.workspaceId, name: unique("d") } })),
];
