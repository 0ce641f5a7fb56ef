// Workspaces, members, projects and the graph. Reading needs a role in the workspace; changing the
// graph and creating projects needs member; members, settings and projects' lifecycle need admin;
// deleting the workspace needs owner. Destructive operations get a fresh object per actor.
import { randomBytes } from "node:crypto";
import { createUser, unique } from "../../helpers/factories.js";
import {
  addMember,
  admin,
  everyone,
  isUserActor,
  owner,
  read,
  selfRead,
  selfWrite,
  sessionOnly,
  write,
  type ActorName,
  type Expectation,
  type MatrixCase,
  type World,
} from "../world.js";

/** Operations on the caller's own settings that still need a role in the workspace (any role). */
const anyRoleWrites: Expectation = { ...write, viewer: "ok" };

/** A new workspace where the world's users have their usual roles (the stranger has none). */
async function teamWorkspace(world: World) {
  const prisma = world.server.db.prisma;
  const workspace = await prisma.workspace.create({ data: { name: unique("team") } });
  for (const role of ["owner", "admin", "member", "viewer"] as const) {
    await addMember(world.server, workspace.id, world.users[role].id, role.toUpperCase() as "OWNER");
  }
  return { workspaceId: workspace.id };
}

async function project(world: World, members: { userId: string; role: "MAINTAINER" | "DEVELOPER" | "VIEWER" }[] = []) {
  const row = await world.server.db.prisma.project.create({
    data: { workspaceId: world.workspaceId, key: `P${randomBytes(4).toString("hex").toUpperCase()}`, name: "p", members: { create: members } },
  });
  return { projectId: row.id, key: row.key };
}

/** A confirmed user who is a plain member of the world's workspace. */
async function newMember(world: World) {
  const user = await createUser(world.server);
  await addMember(world.server, world.workspaceId, user.id, "MEMBER");
  return user;
}

/** An open invitation in the world's workspace, to an address nobody uses. */
async function invitation(world: World) {
  const row = await world.server.db.prisma.workspaceInvitation.create({
    data: { workspaceId: world.workspaceId, email: `${unique("invitee")}@example.test`, role: "MEMBER", expiresAt: new Date(Date.now() + 3_600_000) },
  });
  return { id: row.id };
}

/**
 * An open invitation to a new workspace, addressed to the actor's own email (the read key's owner's
 * for the key): the invitee answers it, so every user may; keys and machines cannot.
 */
async function ownInvitation(world: World, actor: ActorName) {
  const prisma = world.server.db.prisma;
  const workspace = await prisma.workspace.create({ data: { name: unique("inviting") } });
  const email = world.users[isUserActor(actor) ? actor : "owner"].email;
  const row = await prisma.workspaceInvitation.create({ data: { workspaceId: workspace.id, email, role: "MEMBER", expiresAt: new Date(Date.now() + 3_600_000) } });
  return { id: row.id, workspaceId: workspace.id };
}

async function blocks(world: World) {
  const prisma = world.server.db.prisma;
  const [a, b] = [unique("node_"), unique("node_")];
  await prisma.graphBlock.createMany({
    data: [a, b].map((id) => ({ workspaceId: world.workspaceId, id, type: "monitor", label: id })),
  });
  const edge = await prisma.graphEdge.create({ data: { workspaceId: world.workspaceId, id: unique("edge_"), source: a, target: b } });
  return { a, b, edgeId: edge.id };
}

const mutation = (field: string, inputType: string, select: string, input: (w: World, f: Record<string, any>) => Record<string, unknown>, expect: Expectation, setup?: MatrixCase["setup"]): MatrixCase => ({
  field: `Mutation.${field}`,
  setup,
  request: (w, f) => ({ query: `mutation($i: ${inputType}!) { ${field}(input: $i) { ${select} } }`, variables: { i: input(w, f) } }),
  expect,
});

export const cases: MatrixCase[] = [
  {
    field: "Query.workspaces",
    request: () => ({ query: "{ workspaces(first: 100) { totalCount edges { node { id viewerRole } } } }" }),
    expect: selfRead,
    check: (data, actor, w) => {
      const ids: string[] = data.workspaces.edges.map((e: { node: { id: string } }) => e.node.id);
      const foreign = actor === "stranger" ? w.workspaceId : w.otherWorkspaceId;
      if (ids.includes(foreign)) throw new Error(`${actor} sees a workspace that is not theirs`);
    },
  },
  {
    field: "Query.workspace",
    request: (w) => ({
      query: "query($id: ID!) { workspace(id: $id) { id viewerRole members(first: 5) { totalCount } projects(first: 5) { totalCount } graph { version } } }",
      variables: { id: w.workspaceId },
    }),
    expect: read,
  },
  {
    field: "Query.workspaceByLegacyId",
    setup: async (w) => w.server.db.prisma.workspace.findUniqueOrThrow({ where: { id: w.workspaceId }, select: { legacyId: true } }),
    request: (_w, f) => ({
      query: "query($legacyId: Int!) { workspaceByLegacyId(legacyId: $legacyId) { id legacyId graph { version } } }",
      variables: { legacyId: f.legacyId },
    }),
    expect: read,
  },
  { field: "Query.defaultWorkspace", request: () => ({ query: "{ defaultWorkspace { id graph { version } } }" }), expect: selfRead },
  {
    field: "Mutation.createWorkspace",
    request: () => ({ query: "mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }", variables: { i: { name: unique("ws") } } }),
    expect: selfWrite,
  },
  {
    field: "Mutation.setDefaultWorkspace",
    request: (w) => ({ query: "mutation($id: ID!) { setDefaultWorkspace(id: $id) { id } }", variables: { id: w.workspaceId } }),
    expect: anyRoleWrites,
  },
  mutation("renameWorkspace", "RenameWorkspaceInput", "id name", (w) => ({ id: w.workspaceId, name: unique("renamed") }), admin),
  {
    field: "Mutation.deleteWorkspace",
    setup: teamWorkspace,
    request: (_w, f) => ({ query: "mutation($id: ID!) { deleteWorkspace(id: $id) }", variables: { id: f.workspaceId } }),
    expect: owner,
  },
  mutation(
    "inviteWorkspaceMember",
    "InviteWorkspaceMemberInput",
    "id status workspace { id }",
    (w) => ({ workspaceId: w.workspaceId, email: `${unique("invited")}@example.test`, role: "VIEWER" }),
    admin,
  ),
  {
    field: "Mutation.revokeWorkspaceInvitation",
    setup: invitation,
    request: (_w, f) => ({ query: "mutation($id: ID!) { revokeWorkspaceInvitation(id: $id) { id status } }", variables: { id: f.id } }),
    expect: admin,
  },
  {
    field: "Query.myInvitations",
    setup: ownInvitation,
    request: () => ({ query: "{ myInvitations(first: 100) { edges { node { id workspace { id name } } } } }" }),
    expect: sessionOnly,
    check: (data, _actor, _w, f) => {
      const ids = data.myInvitations.edges.map((e: { node: { id: string } }) => e.node.id);
      if (!ids.includes(f.id)) throw new Error("the actor's own invitation is not listed");
    },
  },
  {
    field: "Mutation.acceptWorkspaceInvitation",
    setup: ownInvitation,
    request: (_w, f) => ({ query: "mutation($id: ID!) { acceptWorkspaceInvitation(id: $id) { role workspace { id } } }", variables: { id: f.id } }),
    expect: sessionOnly,
  },
  {
    field: "Mutation.declineWorkspaceInvitation",
    setup: ownInvitation,
    request: (_w, f) => ({ query: "mutation($id: ID!) { declineWorkspaceInvitation(id: $id) { id status } }", variables: { id: f.id } }),
    expect: sessionOnly,
  },
  mutation(
    "changeWorkspaceMemberRole",
    "ChangeWorkspaceMemberRoleInput",
    "role",
    (w, f) => ({ workspaceId: w.workspaceId, userId: f.id, role: "VIEWER" }),
    admin,
    newMember,
  ),
  mutation("removeWorkspaceMember", "RemoveWorkspaceMemberInput", "userId", (w, f) => ({ workspaceId: w.workspaceId, userId: f.id }), admin, newMember),

  {
    field: "Query.project",
    setup: (world) => project(world),
    request: (_w, f) => ({ query: "query($id: ID!) { project(id: $id) { id key members(first: 5) { totalCount } } }", variables: { id: f.projectId } }),
    expect: read,
  },
  {
    field: "Query.projectByKey",
    setup: (world) => project(world),
    request: (w, f) => ({ query: "query($ws: ID!, $key: String!) { projectByKey(workspaceId: $ws, key: $key) { id } }", variables: { ws: w.workspaceId, key: f.key } }),
    expect: read,
  },
  mutation("createProject", "CreateProjectInput", "id", (w) => ({ workspaceId: w.workspaceId, key: `N${randomBytes(4).toString("hex").toUpperCase()}`, name: "n" }), write),
  // The project has no maintainers, so only workspace admins may change it.
  mutation("updateProject", "UpdateProjectInput", "id name", (_w, f) => ({ id: f.projectId, name: "renamed" }), admin, (world) => project(world)),
  {
    field: "Mutation.archiveProject",
    setup: (world) => project(world),
    request: (_w, f) => ({ query: "mutation($id: ID!) { archiveProject(id: $id) { id archived } }", variables: { id: f.projectId } }),
    expect: admin,
  },
  {
    field: "Mutation.unarchiveProject",
    setup: async (world) => {
      const p = await project(world);
      await world.server.db.prisma.project.update({ where: { id: p.projectId }, data: { archivedAt: new Date() } });
      return p;
    },
    request: (_w, f) => ({ query: "mutation($id: ID!) { unarchiveProject(id: $id) { id archived } }", variables: { id: f.projectId } }),
    expect: admin,
  },
  {
    field: "Mutation.deleteProject",
    setup: (world) => project(world),
    request: (_w, f) => ({ query: "mutation($id: ID!) { deleteProject(id: $id) }", variables: { id: f.projectId } }),
    expect: admin,
  },
  mutation(
    "addProjectMember",
    "AddProjectMemberInput",
    "role",
    (_w, f) => ({ projectId: f.projectId, userId: f.userId }),
    admin,
    async (world) => ({ ...(await project(world)), userId: (await newMember(world)).id }),
  ),
  mutation(
    "changeProjectMemberRole",
    "ChangeProjectMemberRoleInput",
    "role",
    (_w, f) => ({ projectId: f.projectId, userId: f.userId, role: "VIEWER" }),
    admin,
    async (world) => {
      const userId = (await newMember(world)).id;
      return { ...(await project(world, [{ userId, role: "DEVELOPER" }])), userId };
    },
  ),
  mutation(
    "removeProjectMember",
    "RemoveProjectMemberInput",
    "userId",
    (_w, f) => ({ projectId: f.projectId, userId: f.userId }),
    admin,
    async (world) => {
      const userId = (await newMember(world)).id;
      return { ...(await project(world, [{ userId, role: "DEVELOPER" }])), userId };
    },
  ),

  {
    field: "Query.block",
    setup: blocks,
    request: (w, f) => ({ query: "query($ws: ID!, $b: String!) { block(workspaceId: $ws, blockId: $b) { id cfg } }", variables: { ws: w.workspaceId, b: f.a } }),
    expect: read,
  },
  { field: "Query.blockTypes", request: () => ({ query: "{ blockTypes { type category } }" }), expect: everyone },
  mutation(
    "saveGraph",
    "SaveGraphInput",
    "version",
    (_w, f) => ({ workspaceId: f.workspaceId, version: 0, blocks: [{ id: "a", type: "monitor" }], edges: [] }),
    write,
    teamWorkspace,
  ),
  mutation("addBlock", "AddBlockInput", "version block { id }", (w) => ({ workspaceId: w.workspaceId, type: "monitor" }), write),
  mutation("updateBlock", "UpdateBlockInput", "version", (w, f) => ({ workspaceId: w.workspaceId, blockId: f.a, x: 1 }), write, blocks),
  mutation("renameBlock", "RenameBlockInput", "version", (w, f) => ({ workspaceId: w.workspaceId, blockId: f.a, label: "x" }), write, blocks),
  mutation("updateBlockConfig", "UpdateBlockConfigInput", "version", (w, f) => ({ workspaceId: w.workspaceId, blockId: f.a, cfg: { a: 1 } }), write, blocks),
  mutation("removeBlock", "RemoveBlockInput", "version", (w, f) => ({ workspaceId: w.workspaceId, blockId: f.a }), write, blocks),
  mutation("connectBlocks", "ConnectBlocksInput", "version", (w, f) => ({ workspaceId: w.workspaceId, source: f.b, target: f.a }), write, blocks),
  mutation("disconnectBlocks", "DisconnectBlocksInput", "version", (w, f) => ({ workspaceId: w.workspaceId, edgeId: f.edgeId }), write, blocks),
];
