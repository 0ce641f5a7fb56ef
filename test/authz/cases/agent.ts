// Agents: reading needs a role in the workspace, changing needs write; the machine an agent lives
// on reports its status. Each actor gets its own fresh agent, so removing one is fair.
import { unique } from "../../helpers/factories.js";
import { read, write, type Expectation, type Fixture, type MatrixCase, type World } from "../world.js";

/** Users with write access set an agent's status; its machine reports it. */
const writeOrMachine: Expectation = { ...write, machine: "ok" };

async function freshAgent(world: World): Promise<Fixture> {
  const agent = await world.server.db.prisma.agent.create({
    data: { workspaceId: world.workspaceId, machineId: world.machine.id, name: unique("agent") },
  });
  return { id: agent.id };
}

export const cases: MatrixCase[] = [
  {
    field: "Query.agent",
    setup: freshAgent,
    request: (_w, f) => ({ query: "query($id: ID!) { agent(id: $id) { id status machine { id } } }", variables: { id: f.id } }),
    expect: read,
  },
  {
    field: "Mutation.createAgent",
    request: (w) => ({
      query: "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id } }",
      variables: { i: { machineId: w.machine.id, name: unique("agent") } },
    }),
    expect: write,
  },
  {
    field: "Mutation.updateAgent",
    setup: freshAgent,
    request: (_w, f) => ({ query: "mutation($i: UpdateAgentInput!) { updateAgent(input: $i) { id } }", variables: { i: { id: f.id, description: "d" } } }),
    expect: write,
  },
  {
    field: "Mutation.setAgentStatus",
    setup: freshAgent,
    request: (_w, f) => ({ query: "mutation($id: ID!) { setAgentStatus(id: $id, status: BUSY) { id status } }", variables: { id: f.id } }),
    expect: writeOrMachine,
  },
  {
    field: "Mutation.deleteAgent",
    setup: freshAgent,
    request: (_w, f) => ({ query: "mutation($id: ID!) { deleteAgent(id: $id) }", variables: { id: f.id } }),
    expect: write,
  },
];
