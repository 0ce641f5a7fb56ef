// Machines and enrollment: reading needs a role in the workspace, administering needs admin (drain:
// member), a machine acts only on itself, and the two public operations (registration with an
// enrollment token, recovery with a recovery secret) are open to anyone holding that secret. Each
// actor gets its own fresh machine or token, so destructive operations are fair.
import {
  displayPrefix,
  ENROLLMENT_TOKEN_PREFIX,
  generateSecret,
  MACHINE_CREDENTIAL_PREFIX,
  MACHINE_RECOVERY_PREFIX,
} from "../../../src/auth/api-key-format.js";
import { sha256 } from "../../../src/auth/secrets.js";
import { unique } from "../../helpers/factories.js";
import { admin, everyone, machineOnly, read, write, type Expectation, type Fixture, type MatrixCase, type World } from "../world.js";

/** Users with write access report for a machine by id; the machine reports for itself. */
const writeOrMachine: Expectation = { ...write, machine: "ok" };
/** Admins rotate any machine's credential; the machine rotates its own. */
const adminOrMachine: Expectation = { ...admin, machine: "ok" };

async function freshMachine(world: World, extra: { drainingSince?: Date } = {}): Promise<Fixture> {
  const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
  const recoverySecret = generateSecret(MACHINE_RECOVERY_PREFIX);
  const machine = await world.server.db.prisma.machine.create({
    data: {
      workspaceId: world.workspaceId,
      name: unique("machine"),
      credentialPrefix: displayPrefix(credential),
      credentialHash: sha256(credential),
      recoveryHash: sha256(recoverySecret),
      lastHeartbeatAt: new Date(),
      ...extra,
    },
  });
  return { id: machine.id, credential, recoverySecret };
}

async function freshToken(world: World): Promise<Fixture> {
  const token = generateSecret(ENROLLMENT_TOKEN_PREFIX);
  const row = await world.server.db.prisma.enrollmentToken.create({
    data: {
      workspaceId: world.workspaceId,
      name: unique("token"),
      prefix: displayPrefix(token),
      tokenHash: sha256(token),
      labels: [],
      expiresAt: new Date(Date.now() + 3600_000),
    },
  });
  return { id: row.id, token };
}

const onMachine = (
  field: string,
  expect: Expectation,
  args = "",
  extra: Record<string, unknown> = {},
  setup = (w: World) => freshMachine(w),
  selection = "id",
): MatrixCase => ({
  field: `Mutation.${field}`,
  setup,
  request: (_w, f) => ({
    query: `mutation($id: ID!${Object.keys(extra).map((k) => `, $${k}: ${typeof extra[k] === "boolean" ? "Boolean!" : "String"}`).join("")}) { ${field}(id: $id${args}) { ${selection} } }`,
    variables: { id: f.id, ...extra },
  }),
  expect,
});

export const cases: MatrixCase[] = [
  {
    field: "Query.machine",
    request: (w) => ({ query: "query($id: ID!) { machine(id: $id) { id status workers(first: 2) { totalCount } } }", variables: { id: w.machine.id } }),
    expect: read,
  },
  {
    field: "Query.currentMachine",
    request: () => ({ query: "{ currentMachine { id workspaceId } }" }),
    expect: machineOnly,
    check: (data, _a, w) => {
      if (data.currentMachine.id !== w.machine.id) throw new Error("currentMachine is not the calling machine");
    },
  },
  {
    field: "Query.enrollmentToken",
    setup: freshToken,
    request: (_w, f) => ({ query: "query($id: ID!) { enrollmentToken(id: $id) { id status } }", variables: { id: f.id } }),
    // A read: the owner's read-only key may see it, as the owner may.
    expect: { ...admin, readKey: "ok" },
  },
  {
    field: "Query.fleetOverview",
    request: (w) => ({ query: "query($ws: ID!) { fleetOverview(workspaceId: $ws) { total online } }", variables: { ws: w.workspaceId } }),
    expect: read,
  },
  {
    field: "Mutation.createEnrollmentToken",
    request: (w) => ({
      query: "mutation($i: CreateEnrollmentTokenInput!) { createEnrollmentToken(input: $i) { token } }",
      variables: { i: { workspaceId: w.workspaceId, name: unique("t") } },
    }),
    expect: admin,
  },
  {
    field: "Mutation.revokeEnrollmentToken",
    setup: freshToken,
    request: (_w, f) => ({ query: "mutation($id: ID!) { revokeEnrollmentToken(id: $id) { id status } }", variables: { id: f.id } }),
    expect: admin,
  },
  {
    field: "Mutation.registerMachine",
    setup: freshToken,
    request: (_w, f) => ({
      query: "mutation($i: RegisterMachineInput!) { registerMachine(input: $i) { credential machine { id } } }",
      variables: { i: { token: f.token, name: unique("host") } },
    }),
    expect: everyone,
  },
  {
    field: "Mutation.createMachine",
    request: (w) => ({
      query: "mutation($i: CreateMachineInput!) { createMachine(input: $i) { credential machine { id approval } } }",
      variables: { i: { workspaceId: w.workspaceId, name: unique("host") } },
    }),
    expect: write,
  },
  {
    field: "Mutation.machineHeartbeat",
    request: (w) => ({
      query: "mutation($i: MachineHeartbeatInput!) { machineHeartbeat(input: $i) { leasedTaskIds machine { id } } }",
      variables: { i: { machineId: w.machine.id, cpuPercent: 10 } },
    }),
    expect: writeOrMachine,
  },
  {
    field: "Mutation.rotateMachineCredential",
    setup: (w) => freshMachine(w),
    // The machine actor is the fresh machine itself, so the world's machine keeps its credential.
    as: (w, f, actor) => (actor === "machine" ? f.credential : w.tokens[actor]),
    request: (_w, f) => ({ query: "mutation($id: ID) { rotateMachineCredential(machineId: $id) { credential } }", variables: { id: f.id } }),
    expect: adminOrMachine,
  },
  {
    field: "Mutation.refreshMachineAccessToken",
    request: () => ({ query: "mutation { refreshMachineAccessToken { token expiresAt } }" }),
    expect: machineOnly,
  },
  {
    field: "Mutation.recoverMachineCredential",
    setup: (w) => freshMachine(w),
    request: (_w, f) => ({
      query: "mutation($i: RecoverMachineCredentialInput!) { recoverMachineCredential(input: $i) { credential } }",
      variables: { i: { machineId: f.id, recoverySecret: f.recoverySecret } },
    }),
    expect: everyone,
  },
  {
    field: "Mutation.updateMachine",
    setup: (w) => freshMachine(w),
    request: (_w, f) => ({ query: "mutation($id: ID!) { updateMachine(id: $id, input: { group: \"g\" }) { id } }", variables: { id: f.id } }),
    expect: admin,
  },
  onMachine("approveMachine", admin, ", approved: $approved", { approved: true }),
  onMachine("setMachineSchedulable", admin, ", schedulable: $schedulable", { schedulable: false }),
  onMachine("drainMachine", write),
  onMachine("undrainMachine", write, "", {}, (w) => freshMachine(w, { drainingSince: new Date() })),
  onMachine("decommissionMachine", admin, ", reason: $reason", { reason: "matrix" }, (w) => freshMachine(w), "machine { id status }"),
];
