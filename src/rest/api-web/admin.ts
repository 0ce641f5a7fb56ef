// api-web's projects and members, and its administration: developers, projects, worker tokens, machines.
//
// JSON: camelCase; ids are Spindle UUIDs except a developer's, the integer `legacyId` (`id`, and
// `developerId` in bodies and queries); statuses and roles are Spindle's enums in lower case;
// times ISO-8601. Lists answer a plain array of every item; creates answer 201 with the object;
// DELETE of a project or a member answers {"ok": true}; revoke, reset-totp, PUT and decommission
// answer the object after the change.
//
// Who may: /api/admin/developers* are for system administrators (GraphQL's check). The other
// /api/admin/* routes need the ADMIN or OWNER role in the workspace (checked here: GraphQL lets
// members drain machines, create projects and read members). Project members, even their list,
// need the maintainer role on the project or the workspace admin role (checked here too: GraphQL
// lets any workspace member read them and anyone leave a project).
import { z } from "zod";
import {
  ApiAdminAddMemberDocument,
  ApiAdminCreateProjectDocument,
  ApiAdminCreateTokenDocument,
  ApiAdminDecommissionMachineDocument,
  ApiAdminDeleteProjectDocument,
  ApiAdminDrainMachineDocument,
  ApiAdminMachineDocument,
  ApiAdminMachinesDocument,
  ApiAdminProjectByKeyDocument,
  ApiAdminProjectMembersDocument,
  ApiAdminProjectsDocument,
  ApiAdminReadsAccountsDocument,
  ApiAdminRemoveMemberDocument,
  ApiAdminResetTotpDocument,
  ApiAdminRevokeTokenDocument,
  ApiAdminSetSchedulableDocument,
  ApiAdminTokenDocument,
  ApiAdminTokensDocument,
  ApiAdminTokenStatusDocument,
  ApiAdminUndrainMachineDocument,
  ApiAdminUpdateProjectDocument,
  ApiAdminUsersDocument,
  ApiAdminDevelopersDocument,
  ApiAdminCreateDeveloperDocument,
  ApiAdminUpdateDeveloperDocument,
  ApiAdminViewerDocument,
  ApiAdminWorkspaceMembersDocument,
  type ApiAdminDeveloperFragment,
  type ApiAdminMachineFragment,
  type ApiAdminMemberFragment,
  type ApiAdminProjectFragment,
  type ApiAdminTokenFragment,
  type ApiAdminViewerQuery,
  type MachineStatus,
  type ProjectRole,
} from "../../generated/rest-api-web-graphql.js";
import { RestError, restNotFound, type Route, type Run } from "../route.js";
import { collect, dialectRoute, type FieldNames } from "../shared.js";
import { API_WEB_FIELDS, BEARER, badInput, done, lower, MACHINE_STATUSES, machineOut, machineShape, projectIdOf, time, workspaceOf } from "./common.js";

/** Renames of this file's operations, before api-web's own (`input.*` -> `body.*`). */
const ADMIN_FIELDS: FieldNames = [
  ["reason", "query.reason"],
  ["input.username", "body.name"],
];
const adminRoute = dialectRoute("api-web", [...ADMIN_FIELDS, ...API_WEB_FIELDS]);

// ---- Who is asking ---------------------------------------------------------------------------

type Me = ApiAdminViewerQuery["me"];

interface Viewer {
  workspaceId: string;
  me: Me;
  /** ADMIN or OWNER of the workspace. */
  workspaceAdmin: boolean;
}

async function viewerOf(run: Run): Promise<Viewer> {
  const workspaceId = await workspaceOf(run);
  const { me, workspace } = await run(ApiAdminViewerDocument, { workspaceId });
  const workspaceAdmin = workspace.viewerRole === "ADMIN" || workspace.viewerRole === "OWNER";
  return { workspaceId, me, workspaceAdmin };
}

/**
 * Whether the caller may read every account's private fields (totpEnabled): a
 * system administrator whose credential carries the admin scope. An administrator's API key may
 * lack it, and then asking others' private fields would fail the whole request.
 */
async function readsAccounts(run: Run, me: Me): Promise<boolean> {
  if (me.role !== "ADMIN") return false;
  try {
    await run(ApiAdminReadsAccountsDocument, {});
    return true;
  } catch (error) {
    if (error instanceof RestError && error.code === "FORBIDDEN") return false;
    throw error;
  }
}

/**
 * The caller's workspace when they administer it, else undefined: a developer made there joins it.
 * A caller in no workspace gets undefined too (a system administrator needs none to make accounts).
 */
async function administeredWorkspace(run: Run): Promise<string | undefined> {
  const viewer = await viewerOf(run).catch((error: unknown) => {
    if (error instanceof RestError && error.code === "NOT_FOUND") return undefined;
    throw error;
  });
  return viewer?.workspaceAdmin ? viewer.workspaceId : undefined;
}

/** The workspace, for a caller with the ADMIN or OWNER role in it; anyone else gets 403. */
async function adminViewer(run: Run): Promise<Viewer> {
  const viewer = await viewerOf(run);
  if (!viewer.workspaceAdmin) throw new RestError("FORBIDDEN", "This needs the admin or owner role in the workspace");
  return viewer;
}

/**
 * Every member of the project (with `role` only those), their private fields when `private`; 404
 * for a key the workspace does not have.
 */
async function membersOf(run: Run, workspaceId: string, key: string, options: { role?: ProjectRole; private?: boolean } = {}) {
  const variables = { workspaceId, key, role: options.role, private: options.private ?? false };
  return collect(async (page) => (await run(ApiAdminProjectMembersDocument, { ...variables, ...page })).projectByKey.members);
}

/** The project's maintainers and the workspace's admins; 404 first for an unknown key, then 403. */
async function maintainerViewer(run: Run, key: string): Promise<Viewer> {
  const viewer = await viewerOf(run);
  const maintainers = await membersOf(run, viewer.workspaceId, key, { role: "MAINTAINER" });
  if (!viewer.workspaceAdmin && !maintainers.some((member) => member.user.id === viewer.me.id)) {
    throw new RestError("FORBIDDEN", `This needs the maintainer role on project ${key.toUpperCase()} or the admin role in the workspace`);
  }
  return viewer;
}

// ---- Shapes ----------------------------------------------------------------------------------

const developerShape = z.object({
  id: z.int().describe("The developer id (an integer)"),
  name: z.string().describe("The username"),
  displayName: z.string().nullable(),
  email: z.string().nullable().describe("The sign-in email: null unless the caller is this developer or a system administrator (and for accounts without one)"),
  gitName: z.string().nullable().describe("null unless the caller shares a workspace with this developer"),
  gitEmail: z.string().nullable().describe("null unless the caller shares a workspace with this developer"),
  role: z.enum(["admin", "user"]).describe("System role"),
  totpEnabled: z.boolean().nullable().describe("null unless the caller is this developer or a system administrator"),
});
type Developer = z.infer<typeof developerShape>;

/** A developer; the private fields only when GraphQL gave them (or from `me`, for the caller's own row). */
function developerOut(user: ApiAdminDeveloperFragment, me?: Me): Developer {
  const own = me?.id === user.id ? me : user;
  return {
    id: user.legacyId,
    name: user.username,
    displayName: user.displayName ?? null,
    email: user.email ?? null,
    gitName: user.gitName ?? null,
    gitEmail: user.gitEmail ?? null,
    role: lower(user.role),
    totpEnabled: own.totpEnabled ?? null,
  };
}

const projectShape = z.object({
  id: z.string(),
  key: z.string().describe("Upper-case; paths take it in any case"),
  name: z.string(),
  description: z.string().nullable(),
  repoUrl: z.string().nullable(),
  pipeline: z.record(z.string(), z.unknown()),
  agentType: z.string().nullable(),
  archived: z.boolean(),
  createdAt: time,
  updatedAt: time,
});
const projectOut = (project: ApiAdminProjectFragment): z.infer<typeof projectShape> => ({
  id: project.id,
  key: project.key,
  name: project.name,
  description: project.description ?? null,
  repoUrl: project.repoUrl ?? null,
  pipeline: project.pipeline as Record<string, unknown>,
  agentType: project.agentType ?? null,
  archived: project.archived,
  createdAt: project.createdAt,
  updatedAt: project.updatedAt,
});

const PROJECT_ROLES = ["maintainer", "developer", "viewer"] as const;
const memberShape = z.object({
  projectKey: z.string(),
  developerId: z.int(),
  role: z.enum(PROJECT_ROLES).describe("Project role"),
  joinedAt: time,
  developer: developerShape,
});
const memberOut = (projectKey: string, member: ApiAdminMemberFragment, me: Me): z.infer<typeof memberShape> => ({
  projectKey,
  developerId: member.user.legacyId,
  role: lower(member.role),
  joinedAt: member.joinedAt,
  developer: developerOut(member.user, me),
});

const TOKEN_STATUSES = ["active", "used", "expired", "revoked"] as const;
const tokenShape = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().describe("The token's first characters, to tell tokens apart"),
  labels: z.array(z.string()),
  status: z.enum(TOKEN_STATUSES),
  expiresAt: time,
  usedAt: time.nullable(),
  revokedAt: time.nullable(),
  createdAt: time,
  machineId: z.string().nullable().describe("The machine registered with it, once used"),
});
const tokenOut = (token: ApiAdminTokenFragment): z.infer<typeof tokenShape> => ({
  id: token.id,
  name: token.name,
  prefix: token.prefix,
  labels: token.labels,
  status: lower(token.status),
  expiresAt: token.expiresAt,
  usedAt: token.usedAt ?? null,
  revokedAt: token.revokedAt ?? null,
  createdAt: token.createdAt,
  machineId: token.machine?.id ?? null,
});

/** A machine in the admin view: the shared shape, with when it was decommissioned and the worker token it used. */
const adminMachineShape = machineShape.extend({
  decommissionedAt: time.nullable(),
  workerTokenId: z.string().nullable().describe("The worker token it registered with"),
});
const adminMachineOut = (machine: ApiAdminMachineFragment): z.infer<typeof adminMachineShape> => ({
  ...machineOut(machine),
  decommissionedAt: machine.decommissionedAt ?? null,
  workerTokenId: machine.enrollmentToken?.id ?? null,
});

// ---- Inputs ----------------------------------------------------------------------------------

const keyParam = z.object({ key: z.string() });
const projectKeyParam = z.object({ projectKey: z.string() });
const idParam = z.object({ id: z.string() });

/** An integer developer id as text (path or query): anything else is a 400 naming it. */
const developerIdText = z.string("is required: the developer's id").regex(/^\d{1,10}$/, "must be a developer id (an integer)").transform(Number);
const developerIdQuery = z.object({ developerId: developerIdText });

const projectRole = z
  .string("must be a string")
  .toLowerCase()
  .pipe(z.enum(PROJECT_ROLES, `must be one of ${PROJECT_ROLES.join(", ")}`));
const addMemberBody = z.object({
  developerId: z.int("must be a developer id (an integer)").positive("must be a developer id (an integer)"),
  role: projectRole.nullish().describe("developer unless given"),
});

const optionalText = z.string("must be a string").nullish();
const pipeline = z.record(z.string(), z.unknown(), "must be a JSON object");
const projectSettings = {
  name: z.string("must be a string").optional(),
  description: optionalText.describe("null clears it"),
  repoUrl: optionalText.describe("https://, ssh://, git:// or git@host:path; null clears it"),
  pipeline: pipeline.optional().describe("Pipeline settings; replaces them whole"),
  agentType: optionalText.describe("null clears it"),
};
const updateProjectBody = z.object(projectSettings);
const createProjectBody = z.object({
  ...projectSettings,
  key: z.string("must be a string: 1-20 letters, digits or _, starting with a letter"),
  name: z.string("must be a string"),
});

// ---- Projects and members, for the web and admin paths alike ---------------------------------

const projectByKey = async (run: Run, workspaceId: string, key: string) =>
  projectOut((await run(ApiAdminProjectByKeyDocument, { workspaceId, key })).projectByKey);

async function listProjects(run: Run, workspaceId: string) {
  const projects = await collect(async (page) => (await run(ApiAdminProjectsDocument, { workspaceId, ...page })).workspace.projects);
  return projects.map(projectOut);
}

async function updateProject(run: Run, workspaceId: string, key: string, body: z.infer<typeof updateProjectBody>) {
  const id = await projectIdOf(run, workspaceId, key);
  const { updateProject: project } = await run(ApiAdminUpdateProjectDocument, { input: { id, ...body } });
  return projectOut(project);
}

/** The user behind an integer developer id among the workspace's members, or a 400 naming the body field. */
async function workspaceUserOf(run: Run, workspaceId: string, developerId: number): Promise<string> {
  const members = await collect(async (page) => (await run(ApiAdminWorkspaceMembersDocument, { workspaceId, ...page })).workspace.members);
  const member = members.find((m) => m.user.legacyId === developerId);
  if (!member) throw badInput("body.developerId", `no developer with id ${developerId} in this workspace`);
  return member.user.id;
}

type Guard = (run: Run, key: string) => Promise<Viewer>;

/** GET, POST and DELETE of a project's members at `path` (its key parameter named `param`), behind `guard`. */
function memberRoutes(path: string, param: "key" | "projectKey", guard: Guard, who: string): Route[] {
  const params = param === "key" ? keyParam : projectKeyParam.transform((p) => ({ key: p.projectKey }));
  return [
    adminRoute({
      method: "GET",
      path,
      summary: `List the project's members (${who})`,
      auth: BEARER,
      params,
      response: z.array(memberShape),
      async handler({ params, run }) {
        const { key } = params;
        const viewer = await guard(run, key);
        const members = await membersOf(run, viewer.workspaceId, key, { private: await readsAccounts(run, viewer.me) });
        return members.map((member) => memberOut(key.toUpperCase(), member, viewer.me));
      },
    }),
    adminRoute({
      method: "POST",
      path,
      summary: `Add a workspace member to the project (${who}). Body {developerId, role?: maintainer|developer|viewer}`,
      auth: BEARER,
      status: 201,
      params,
      body: addMemberBody,
      response: memberShape,
      async handler({ params, body, run }) {
        const { key } = params;
        const viewer = await guard(run, key);
        const projectId = await projectIdOf(run, viewer.workspaceId, key);
        const userId = await workspaceUserOf(run, viewer.workspaceId, body.developerId);
        const role = body.role ? (body.role.toUpperCase() as ProjectRole) : undefined;
        const { addProjectMember } = await run(ApiAdminAddMemberDocument, {
          input: { projectId, userId, role },
          private: await readsAccounts(run, viewer.me),
        });
        return memberOut(key.toUpperCase(), addProjectMember, viewer.me);
      },
    }),
    adminRoute({
      method: "DELETE",
      path,
      summary: `Remove a member from the project (${who}): ?developerId=N. Answers {ok: true}`,
      auth: BEARER,
      params,
      query: developerIdQuery,
      response: done,
      async handler({ params, query, run }) {
        const { key } = params;
        const viewer = await guard(run, key);
        const member = (await membersOf(run, viewer.workspaceId, key)).find((m) => m.user.legacyId === query.developerId);
        if (!member) throw new RestError("NOT_FOUND", `Developer ${query.developerId} is not a member of project ${key.toUpperCase()}`);
        const projectId = await projectIdOf(run, viewer.workspaceId, key);
        await run(ApiAdminRemoveMemberDocument, { input: { projectId, userId: member.user.id } });
        return { ok: true as const };
      },
    }),
  ];
}

const adminGuard: Guard = (run) => adminViewer(run);
const WORKSPACE_ADMINS = "workspace admins and owners";

const projectRoutes: Route[] = [
  adminRoute({
    method: "GET",
    path: "/api/web/projects",
    summary: "List every project of the workspace (archived ones too, with archived: true)",
    auth: BEARER,
    response: z.array(projectShape),
    async handler({ run }) {
      return listProjects(run, await workspaceOf(run));
    },
  }),
  adminRoute({
    method: "GET",
    path: "/api/web/projects/:key",
    summary: "Get a project by its key (any case)",
    auth: BEARER,
    params: keyParam,
    response: projectShape,
    async handler({ params, run }) {
      return projectByKey(run, await workspaceOf(run), params.key);
    },
  }),
  adminRoute({
    method: "PUT",
    path: "/api/web/projects/:projectKey",
    summary: "Update project settings (name, description, repoUrl, pipeline, agentType): the project's maintainers and workspace admins",
    auth: BEARER,
    params: projectKeyParam,
    body: updateProjectBody,
    response: projectShape,
    async handler({ params, body, run }) {
      // GraphQL's updateProject checks the maintainer role itself (403).
      return updateProject(run, await workspaceOf(run), params.projectKey, body);
    },
  }),
  ...memberRoutes("/api/web/projects/:projectKey/members", "projectKey", maintainerViewer, "the project's maintainers and workspace admins"),
];

// ---- Admin: developers (system administrators) -----------------------------------------------

/** api-web's developer roles onto Spindle's system roles ("developer" is a plain user). */
const systemRole = z
  .string()
  .transform((role) => role.toLowerCase())
  .pipe(z.enum(["admin", "user", "developer"], "must be admin, user or developer"))
  .transform((role) => (role === "admin" ? ("ADMIN" as const) : ("USER" as const)));

const createDeveloperBody = z.object({
  name: z.string().describe("The username the developer signs in with"),
  password: z.string(),
  role: systemRole.nullish().describe("admin, or user/developer (the default)"),
  gitName: z.string().nullish(),
  gitEmail: z.string().nullish(),
  displayName: z.string().nullish(),
  email: z.string().nullish().describe("Optional: api-web developers sign in by name"),
});

const updateDeveloperBody = z.object({
  name: z.undefined("cannot change: a developer keeps the name they sign in with").optional(),
  displayName: z.string().nullish(),
  gitName: z.string().nullish(),
  gitEmail: z.string().nullish(),
  role: systemRole.nullish(),
  password: z.string().optional().describe("A new password (an administrator's reset): the developer's sessions end"),
});

/** The account behind an integer developer id (system administrators: Query.users), or 404. */
async function developerUuid(run: Run, developerId: number): Promise<string> {
  const users = await collect(async (page) => (await run(ApiAdminUsersDocument, { private: false, ...page })).users);
  const user = users.find((u) => u.legacyId === developerId);
  if (!user) throw restNotFound(`developer with id ${developerId}`);
  return user.id;
}

const developerRoutes: Route[] = [
  adminRoute({
    method: "GET",
    path: "/api/web/projects/-/developers",
    summary: "The workspace's developers (id, name, gitEmail, role) to choose project members from; the email only for administrators",
    auth: BEARER,
    response: z.array(developerShape),
    async handler({ run }) {
      const workspaceId = await workspaceOf(run);
      const members = await collect(async (page) => (await run(ApiAdminDevelopersDocument, { workspaceId, private: false, ...page })).workspace.members);
      return members.map((member) => developerOut(member.user));
    },
  }),
  adminRoute({
    method: "POST",
    path: "/api/admin/developers",
    summary:
      "Create a developer account (system administrators). It needs no email and signs in by name; it joins the workspace at once when the caller administers it",
    auth: BEARER,
    status: 201,
    body: createDeveloperBody,
    response: developerShape,
    async handler({ body, run }) {
      const workspaceId = await administeredWorkspace(run);
      const input = {
        username: body.name,
        password: body.password,
        role: body.role ?? "USER",
        gitName: body.gitName,
        gitEmail: body.gitEmail,
        displayName: body.displayName,
        email: body.email,
        ...(workspaceId ? { workspaceId, workspaceRole: "MEMBER" as const } : {}),
      };
      return developerOut((await run(ApiAdminCreateDeveloperDocument, { input, private: true })).createUser);
    },
  }),
  adminRoute({
    method: "PUT",
    path: "/api/admin/developers/:id",
    summary: "Update a developer (system administrators): displayName, gitName, gitEmail, role, or a new password (which ends their sessions)",
    auth: BEARER,
    params: z.object({ id: developerIdText }),
    body: updateDeveloperBody,
    response: developerShape,
    async handler({ params, body, run }) {
      const id = await developerUuid(run, params.id);
      const { name: _unchangeable, ...changes } = body;
      return developerOut((await run(ApiAdminUpdateDeveloperDocument, { input: { id, ...changes }, private: true })).updateUser);
    },
  }),
  adminRoute({
    method: "GET",
    path: "/api/admin/developers",
    summary: "List every developer account of the server (system administrators)",
    auth: BEARER,
    response: z.array(developerShape),
    async handler({ run }) {
      const users = await collect(async (page) => (await run(ApiAdminUsersDocument, { private: true, ...page })).users);
      return users.map((user) => developerOut(user));
    },
  }),
  adminRoute({
    method: "PUT",
    path: "/api/admin/developers/:id/reset-totp",
    summary: "Turn off a developer's two-factor sign-in (system administrators); answers the developer after the change",
    auth: BEARER,
    params: z.object({ id: developerIdText }),
    response: developerShape,
    async handler({ params, run }) {
      // Query.users is for system administrators only: anyone else gets its 403 here.
      const id = await developerUuid(run, params.id);
      return developerOut((await run(ApiAdminResetTotpDocument, { id, private: true })).resetUserTotp);
    },
  }),
];

// ---- Admin: projects (workspace admins) ------------------------------------------------------

const adminProjectRoutes: Route[] = [
  adminRoute({
    method: "GET",
    path: "/api/admin/projects",
    summary: "List every project of the workspace (workspace admins)",
    auth: BEARER,
    response: z.array(projectShape),
    async handler({ run }) {
      return listProjects(run, (await adminViewer(run)).workspaceId);
    },
  }),
  adminRoute({
    method: "POST",
    path: "/api/admin/projects",
    summary: "Create a project (workspace admins); the creator becomes its maintainer. Honours Idempotency-Key",
    auth: BEARER,
    status: 201,
    body: createProjectBody,
    response: projectShape,
    async handler({ body, run, idempotencyKey }) {
      const { workspaceId } = await adminViewer(run);
      const { createProject } = await run(ApiAdminCreateProjectDocument, { input: { workspaceId, ...body, idempotencyKey } });
      return projectOut(createProject);
    },
  }),
  adminRoute({
    method: "PUT",
    path: "/api/admin/projects/:key",
    summary: "Update a project, pipeline included (workspace admins)",
    auth: BEARER,
    params: keyParam,
    body: updateProjectBody,
    response: projectShape,
    async handler({ params, body, run }) {
      return updateProject(run, (await adminViewer(run)).workspaceId, params.key, body);
    },
  }),
  adminRoute({
    method: "DELETE",
    path: "/api/admin/projects/:key",
    summary: "Delete a project and its memberships (workspace admins); its tasks stay, without a project. Answers {ok: true}",
    auth: BEARER,
    params: keyParam,
    response: done,
    async handler({ params, run }) {
      const id = await projectIdOf(run, (await adminViewer(run)).workspaceId, params.key);
      await run(ApiAdminDeleteProjectDocument, { id });
      return { ok: true as const };
    },
  }),
  ...memberRoutes("/api/admin/projects/:key/members", "key", adminGuard, WORKSPACE_ADMINS),
];

// ---- Admin: worker (enrollment) tokens -------------------------------------------------------

/** A name for a token the client did not name: the same every time, so a retried create stays one create. */
const DEFAULT_TOKEN_NAME = "Worker token";

/** A worker token of the caller's workspace, or 404 (another workspace's too). */
async function tokenOf(run: Run, workspaceId: string, id: string) {
  const { enrollmentToken } = await run(ApiAdminTokenDocument, { id });
  if (enrollmentToken.workspaceId !== workspaceId) throw restNotFound("worker token");
  return enrollmentToken;
}

const tokenRoutes: Route[] = [
  adminRoute({
    method: "GET",
    path: "/api/admin/worker-tokens",
    summary: "List every worker enrollment token of the workspace, newest first (workspace admins)",
    auth: BEARER,
    response: z.array(tokenShape),
    async handler({ run }) {
      const { workspaceId } = await adminViewer(run);
      const tokens = await collect(async (page) => (await run(ApiAdminTokensDocument, { workspaceId, ...page })).workspace.enrollmentTokens);
      return tokens.map(tokenOut);
    },
  }),
  adminRoute({
    method: "POST",
    path: "/api/admin/worker-tokens",
    summary: `Generate a single-use worker token (workspace admins). Body {name? ("${DEFAULT_TOKEN_NAME}" unless given), labels?, expiresInSeconds?}. The secret \`token\` is shown only here, once (null on an Idempotency-Key replay)`,
    auth: BEARER,
    status: 201,
    body: z.object({
      name: z.string("must be a string").nullish(),
      labels: z.array(z.string("must be a string"), "must be an array of strings").nullish(),
      expiresInSeconds: z.int("must be a whole number of seconds").nullish().describe("60 to 2592000 (30 days); default 24 hours"),
    }),
    response: tokenShape.extend({ token: z.string().nullable().describe("The secret (spe_...), shown once") }),
    async handler({ body, run, idempotencyKey }) {
      const { workspaceId } = await adminViewer(run);
      const { createEnrollmentToken } = await run(ApiAdminCreateTokenDocument, {
        input: { workspaceId, name: body.name ?? DEFAULT_TOKEN_NAME, labels: body.labels, expiresInSeconds: body.expiresInSeconds, idempotencyKey },
      });
      return { ...tokenOut(createEnrollmentToken.enrollmentToken), token: createEnrollmentToken.token ?? null };
    },
  }),
  adminRoute({
    method: "POST",
    path: "/api/admin/worker-tokens/:id/revoke",
    summary: "Revoke an active worker token (workspace admins); answers the token after the change. A used, expired or revoked one is 409",
    auth: BEARER,
    params: idParam,
    response: tokenShape,
    async handler({ params, run }) {
      const { workspaceId } = await adminViewer(run);
      await tokenOf(run, workspaceId, params.id);
      return tokenOut((await run(ApiAdminRevokeTokenDocument, { id: params.id })).revokeEnrollmentToken);
    },
  }),
  adminRoute({
    method: "GET",
    path: "/api/admin/worker-tokens/:id/status",
    summary: "A worker token's status and the machine registered with it (workspace admins)",
    auth: BEARER,
    params: idParam,
    response: z.object({
      id: z.string(),
      name: z.string(),
      status: z.enum(TOKEN_STATUSES),
      expiresAt: time,
      usedAt: time.nullable(),
      revokedAt: time.nullable(),
      machine: z
        .object({ id: z.string(), machineId: z.string().nullable(), name: z.string(), status: z.enum(MACHINE_STATUSES) })
        .nullable()
        .describe("null until a machine registers with it"),
    }),
    async handler({ params, run }) {
      const { workspaceId } = await adminViewer(run);
      const { enrollmentToken: token } = await run(ApiAdminTokenStatusDocument, { id: params.id });
      if (token.workspaceId !== workspaceId) throw restNotFound("worker token");
      const machine = token.machine;
      return {
        id: token.id,
        name: token.name,
        status: lower(token.status),
        expiresAt: token.expiresAt,
        usedAt: token.usedAt ?? null,
        revokedAt: token.revokedAt ?? null,
        machine: machine ? { id: machine.id, machineId: machine.externalId ?? null, name: machine.name, status: lower(machine.status) } : null,
      };
    },
  }),
];

// ---- Admin: machines -------------------------------------------------------------------------

const ALL_MACHINE_STATUSES: MachineStatus[] = ["ONLINE", "OFFLINE", "DRAINING", "DRAINED", "DECOMMISSIONED"];

/**
 * The statuses PUT /api/admin/machines/:id takes (any case) and what each does. Machine.status is
 * derived in Spindle, never set: these are the switches behind it.
 */
const MACHINE_STATUS_ACTIONS = {
  /** Stop new work; it shows draining, then drained. */
  draining: "drain",
  drain: "drain",
  drained: "drain",
  /** Take work again: cancels a drain and turns the operator switch back on. */
  active: "activate",
  online: "activate",
  undrain: "activate",
  enabled: "activate",
  /** The operator switch off: no new work, whatever the drain. */
  disabled: "disable",
  unschedulable: "disable",
} as const;
const MACHINE_STATUS_VALUES = Object.keys(MACHINE_STATUS_ACTIONS) as (keyof typeof MACHINE_STATUS_ACTIONS)[];

/** A machine of the caller's workspace, or 404 (another workspace's too). */
async function machineOf(run: Run, workspaceId: string, id: string): Promise<ApiAdminMachineFragment> {
  const { machine } = await run(ApiAdminMachineDocument, { id });
  if (machine.workspaceId !== workspaceId) throw restNotFound("machine");
  return machine;
}

/** Brings the machine to the asked state; what is already so is left alone, so a repeated PUT is harmless. */
async function applyMachineStatus(run: Run, machine: ApiAdminMachineFragment, action: (typeof MACHINE_STATUS_ACTIONS)[keyof typeof MACHINE_STATUS_ACTIONS]) {
  if (machine.status === "DECOMMISSIONED") throw new RestError("CONFLICT", `Machine ${machine.id} is decommissioned: it cannot change any more`);
  const { id } = machine;
  if (action === "drain" && !machine.draining) await run(ApiAdminDrainMachineDocument, { id });
  if (action === "activate" && machine.draining) await run(ApiAdminUndrainMachineDocument, { id });
  if (action === "activate" && !machine.schedulable) await run(ApiAdminSetSchedulableDocument, { id, schedulable: true });
  if (action === "disable" && machine.schedulable) await run(ApiAdminSetSchedulableDocument, { id, schedulable: false });
}

const machineRoutes: Route[] = [
  adminRoute({
    method: "GET",
    path: "/api/admin/machines",
    summary: "List every machine of the workspace, decommissioned ones included, newest first (workspace admins)",
    auth: BEARER,
    response: z.array(adminMachineShape),
    async handler({ run }) {
      const { workspaceId } = await adminViewer(run);
      const machines = await collect(
        async (page) => (await run(ApiAdminMachinesDocument, { workspaceId, status: ALL_MACHINE_STATUSES, ...page })).workspace.machines,
      );
      return machines.map(adminMachineOut);
    },
  }),
  adminRoute({
    method: "PUT",
    path: "/api/admin/machines/:id",
    summary: `Update a machine's status (workspace admins); answers the machine after the change. status: ${MACHINE_STATUS_VALUES.join(", ")}`,
    auth: BEARER,
    params: idParam,
    body: z.object({
      status: z
        .string("must be a string")
        .toLowerCase()
        .pipe(z.enum(MACHINE_STATUS_VALUES, `must be one of ${MACHINE_STATUS_VALUES.join(", ")} (DELETE decommissions)`))
        .optional()
        .describe("draining/drain/drained: stop new work; active/online/undrain/enabled: take work again; disabled/unschedulable: the operator switch off"),
    }),
    response: adminMachineShape,
    async handler({ params, body, run }) {
      const { workspaceId } = await adminViewer(run);
      const machine = await machineOf(run, workspaceId, params.id);
      if (!body.status) return adminMachineOut(machine);
      await applyMachineStatus(run, machine, MACHINE_STATUS_ACTIONS[body.status]);
      return adminMachineOut(await machineOf(run, workspaceId, params.id));
    },
  }),
  adminRoute({
    method: "DELETE",
    path: "/api/admin/machines/:id",
    summary:
      "Decommission a machine (workspace admins): its credential stops working, ASSIGNED and SUSPENDED tasks go back to the queue, RUNNING tasks fail. Answers the machine and what moved",
    auth: BEARER,
    params: idParam,
    query: z.object({ reason: z.string().min(1, "must be 1-500 characters").max(500, "must be 1-500 characters").optional().describe("Recorded on failed tasks") }),
    response: z.object({
      machine: adminMachineShape,
      requeuedTaskIds: z.array(z.string()).describe("ASSIGNED and SUSPENDED tasks, back in the queue"),
      failedTaskIds: z.array(z.string()).describe("RUNNING tasks, now failed"),
      failedWorkerIds: z.array(z.string()),
    }),
    async handler({ params, query, run }) {
      const { workspaceId } = await adminViewer(run);
      await machineOf(run, workspaceId, params.id);
      const { decommissionMachine: result } = await run(ApiAdminDecommissionMachineDocument, { id: params.id, reason: query.reason });
      return {
        machine: adminMachineOut(result.machine),
        requeuedTaskIds: result.requeuedTaskIds,
        failedTaskIds: result.failedTaskIds,
        failedWorkerIds: result.failedWorkerIds,
      };
    },
  }),
];

export const apiWebAdminRoutes: Route[] = [...projectRoutes, ...developerRoutes, ...adminProjectRoutes, ...tokenRoutes, ...machineRoutes];
