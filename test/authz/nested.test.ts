// Authorization through nested fields: whatever root field let a caller in, following relations
// must not reach what the caller may not see. (The matrix checks root fields; this checks paths.)
import type { GraphQLObjectType } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, MACHINE_RECOVERY_PREFIX, generateApiKey, displayPrefix } from "../../src/auth/api-key-format.js";
import { sha256 } from "../../src/auth/secrets.js";
import { schema } from "../../src/schema/index.js";
import { unique } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";
import { createMachineDirect, createWorld, type World } from "./world.js";

let server: TestServer;
let world: World;
const prisma = () => server.db.prisma;

beforeAll(async () => {
  server = await startTestServer();
  world = await createWorld(server);
}, 60_000);
afterAll(() => server?.close());

/** The codes of the errors of an answer, with the path each one is at. */
async function ask(query: string, token?: string, variables?: Record<string, unknown>) {
  const res = await server.post({ query, variables }, { token });
  return { data: res.data, errors: (res.errors ?? []).map((e) => `${e.extensions?.code} at ${(e.path ?? []).join(".")}`) };
}

/** A project, a worker with secrets and a running task on the world's machine; another machine's worker. */
async function workOnTheMachine() {
  const workspaceId = world.workspaceId;
  const project = await prisma().project.create({ data: { workspaceId, key: unique("P").toUpperCase(), name: "p" } });
  const task = await prisma().task.create({
    data: { workspaceId, projectId: project.id, title: "mine", status: "RUNNING", machineId: world.machine.id, attempt: 1 },
  });
  const worker = await prisma().worker.create({
    data: { workspaceId, kind: "CONTAINER", name: "w", image: "img", env: { DB_PASSWORD: "hunter2" }, machineId: world.machine.id, projectId: project.id },
  });
  const other = await createMachineDirect(server, workspaceId);
  const othersWorker = await prisma().worker.create({
    data: { workspaceId, kind: "CONTAINER", name: "theirs", image: "img", env: { KEY: "theirs" }, machineId: other.id },
  });
  const deployment = await prisma().deployment.create({ data: { workspaceId, name: unique("d") } });
  await prisma().service.create({ data: { workspaceId, deploymentId: deployment.id, name: "mine", image: "i", machineId: world.machine.id, status: "RUNNING" } });
  await prisma().service.create({ data: { workspaceId, deploymentId: deployment.id, name: "theirs", image: "i", env: { STRIPE: "sk_live_x" }, machineId: other.id } });
  return { project, task, worker, other, othersWorker };
}

describe(`nested authorization (${backend})`, () => {
  it("a machine reads its own work, but not the workspace, the project or other machines' work behind it", async () => {
    const { task, worker, othersWorker } = await workOnTheMachine();
    const token = world.machine.credential;

    const own = await ask("{ assignedTasks(first: 10) { edges { node { id title status } } } assignedWorkers { id env } }", token);
    expect(own.errors).toEqual([]);
    expect(own.data.assignedTasks.edges.map((e: any) => e.node.id)).toContain(task.id);
    expect(own.data.assignedWorkers.find((w: any) => w.id === worker.id).env).toEqual({ DB_PASSWORD: "hunter2" });

    const viaTask = await ask("{ assignedTasks(first: 10) { edges { node { id workspace { id } project { id } } } } }", token);
    expect(viaTask.errors.length).toBeGreaterThan(0);
    expect(viaTask.errors.every((e) => e.startsWith("FORBIDDEN"))).toBe(true);
    expect(JSON.stringify(viaTask.data ?? {})).not.toContain(world.workspaceId);

    const viaService = await ask("{ assignedServices { name deployment { services { name env } } } }", token);
    expect(viaService.errors.some((e) => e.startsWith("FORBIDDEN"))).toBe(true);
    expect(JSON.stringify(viaService.data ?? {})).not.toContain("sk_live_x");

    // Another machine's worker is not the machine's to read, by any path.
    const viaMachine = await ask("{ currentMachine { id workers(first: 10) { edges { node { id } } } } }", token);
    expect(JSON.stringify(viaMachine.data ?? {})).not.toContain(othersWorker.id);
  });

  it("the caller of the public machine registration or recovery sees the machine, not the workspace", async () => {
    const recovery = generateSecret(MACHINE_RECOVERY_PREFIX);
    const machine = await createMachineDirect(server, world.workspaceId);
    await prisma().machine.update({ where: { id: machine.id }, data: { recoveryHash: sha256(recovery) } });
    const query = `mutation($i: RecoverMachineCredentialInput!) { recoverMachineCredential(input: $i) { credential machine { id name %s } } }`;
    const plain = await ask(query.replace("%s", ""), undefined, { i: { machineId: machine.id, recoverySecret: recovery } });
    expect(plain.errors).toEqual([]);
    expect(plain.data.recoverMachineCredential.machine.id).toBe(machine.id);

    // The secret was rotated by the first call: set it again for the second.
    await prisma().machine.update({ where: { id: machine.id }, data: { recoveryHash: sha256(recovery) } });
    const deep = await ask(query.replace("%s", "workspace { members { totalCount } }"), undefined, { i: { machineId: machine.id, recoverySecret: recovery } });
    // Anonymous, so refused as NOT_AUTHENTICATED: the secret only stands for the machine itself.
    expect(deep.errors).toEqual(["NOT_AUTHENTICATED at recoverMachineCredential.machine.workspace"]);
    expect(JSON.stringify(deep.data ?? {})).not.toContain("totalCount\":");
  });

  it("shows environment variables to members and above, and null to viewers", async () => {
    const { worker } = await workOnTheMachine();
    const query = "query($id: ID!) { worker(id: $id) { id env } }";
    const asMember = await ask(query, world.tokens.member, { id: worker.id });
    expect(asMember.data.worker.env).toEqual({ DB_PASSWORD: "hunter2" });
    const asViewer = await ask(query, world.tokens.viewer, { id: worker.id });
    expect(asViewer.errors).toEqual([]);
    expect(asViewer.data.worker.env).toBeNull();
  });

  it("an invitee sees the invited workspace's id and name, nothing more; only admins see a workspace's invitations", async () => {
    const invited = (schema.getType("InvitedWorkspace") as GraphQLObjectType).getFields();
    expect(Object.keys(invited).sort()).toEqual(["id", "name"]);
    const invitation = await prisma().workspaceInvitation.create({
      data: { workspaceId: world.workspaceId, email: world.users.stranger.email, role: "VIEWER", expiresAt: new Date(Date.now() + 3_600_000) },
    });
    const asInvitee = await ask("{ myInvitations(first: 10) { edges { node { id workspace { id name } } } } }", world.tokens.stranger);
    expect(asInvitee.errors).toEqual([]);
    expect(asInvitee.data.myInvitations.edges.map((e: any) => [e.node.id, e.node.workspace.id])).toEqual([[invitation.id, world.workspaceId]]);

    const list = "query($id: ID!) { workspace(id: $id) { invitations(first: 10) { edges { node { id email } } } } }";
    expect((await ask(list, world.tokens.member, { id: world.workspaceId })).errors).toEqual(["FORBIDDEN at workspace.invitations"]);
    const asAdmin = await ask(list, world.tokens.admin, { id: world.workspaceId });
    expect(asAdmin.errors).toEqual([]);
    expect(asAdmin.data.workspace.invitations.edges.map((e: any) => e.node.id)).toContain(invitation.id);
  });

  it("a key bound to a workspace lists only the keys bound to it", async () => {
    const owner = world.users.owner;
    const bound = generateApiKey();
    const make = (key: string, workspaceId: string | null) =>
      prisma().apiKey.create({ data: { userId: owner.id, name: unique("k"), prefix: displayPrefix(key), keyHash: sha256(key), scopes: ["READ"], workspaceId } });
    const boundRow = await make(bound, world.workspaceId);
    const elsewhere = await make(generateApiKey(), world.otherWorkspaceId);
    const listed = await ask("{ apiKeys(first: 100) { edges { node { id workspaceId } } } }", bound);
    const ids = listed.data.apiKeys.edges.map((e: any) => e.node.id);
    expect(ids).toContain(boundRow.id);
    expect(ids).not.toContain(elsewhere.id);
    expect(listed.data.apiKeys.edges.every((e: any) => e.node.workspaceId === world.workspaceId)).toBe(true);
  });
});
