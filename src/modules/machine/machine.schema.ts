import { requireMachine } from "../../auth/viewer.js";
import { sha256 } from "../../auth/secrets.js";
import type { Prisma } from "../../generated/prisma/client.js";
import { builder, pageSize } from "../../schema/builder.js";
import { readById } from "../shared/point-read.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { TaskStatusEnum } from "../task/task.schema.js";
import { WorkerStatusEnum } from "../worker/worker.schema.js";
import { enrollmentTokenStatuses, machineStatusSelect, machineStatuses, tokenStatusOf } from "./machine.service.js";

const newestFirst = [{ createdAt: "desc" as const }, { id: "desc" as const }];

export const MachineStatusEnum = builder.enumType("MachineStatus", {
  description:
    "Derived, never stored. DECOMMISSIONED wins, then DRAINING (draining and still holding ASSIGNED/RUNNING/SUSPENDED tasks or DEPLOYING/RUNNING workers) / DRAINED (draining and empty), then ONLINE / OFFLINE (no heartbeat within the configured timeout).",
  values: machineStatuses,
});

export const MachineApprovalEnum = builder.enumType("MachineApproval", {
  description: "api-v1 is_approved. Only APPROVED machines get work; a REJECTED machine's credential is refused.",
  values: {
    PENDING: { description: "Registered by a workspace member; waits for an admin" },
    APPROVED: { description: "May get work" },
    REJECTED: { description: "Refused: its credential no longer authenticates" },
  } as const,
});

export const EnrollmentTokenStatusEnum = builder.enumType("EnrollmentTokenStatus", {
  description: "Derived: REVOKED, else USED, else EXPIRED once expiresAt has passed, else ACTIVE.",
  values: enrollmentTokenStatuses,
});

export const EnrollmentTokenType = builder.prismaObject("EnrollmentToken", {
  authScopes: workspaceMembers,
  description: "A single-use token a workspace admin hands to a new machine (api-web worker token); registering with it makes the machine.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    name: t.exposeString("name"),
    prefix: t.exposeString("prefix", { description: "The token's first characters, to tell tokens apart" }),
    labels: t.exposeStringList("labels", { description: "Given to the machine that registers with it" }),
    status: t.field({ type: EnrollmentTokenStatusEnum, resolve: (token) => tokenStatusOf(token) }),
    expiresAt: t.expose("expiresAt", { type: "DateTime" }),
    usedAt: t.expose("usedAt", { type: "DateTime", nullable: true }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    createdById: t.exposeID("createdById", { nullable: true, description: "The user who created it" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    machine: t.relation("machine", { nullable: true, description: "The machine it became, once used" }),
  }),
});

export const MachineType = builder.prismaObject("Machine", {
  // Users of the workspace, the machine itself, or whoever was just handed its secrets.
  authScopes: (machine) => ({ $any: { workspaceMember: machine.workspaceId, machineIs: machine.id, $granted: "machineSecrets" } }),
  description: 'A compute host: Spunto "node", api-web "machine", api-v1 "worker".',
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    workspace: t.relation("workspace", {
      description: "Users of the workspace only: a machine's credential does not reach the workspace's other objects",
      authScopes: (machine, _args, ctx) => ctx.services.machines.requireMember(ctx, machine.workspaceId),
    }),
    name: t.exposeString("name"),
    externalId: t.exposeString("externalId", {
      nullable: true,
      description: "The machine's own id for itself (hostname, api-web machineId); unique in the workspace",
    }),
    approval: t.expose("approval", { type: MachineApprovalEnum }),
    group: t.exposeString("group", { nullable: true, description: "api-v1 worker group" }),
    labels: t.exposeStringList("labels"),
    capabilities: t.exposeStringList("capabilities", { description: "What it can run; tasks' requiredCapabilities must all be here" }),
    hardware: t.expose("hardware", { type: "JSON", description: "As the machine reports it (cpu cores, memory, os, ip ...)" }),
    schedulable: t.exposeBoolean("schedulable", { description: "Operator switch, separate from draining: false means never schedule here" }),
    status: t.field({
      type: MachineStatusEnum,
      select: machineStatusSelect,
      resolve: (machine, _args, ctx) => ctx.services.machines.statusOf(machine),
    }),
    online: t.boolean({
      description: "A heartbeat arrived within the configured timeout (and it is not decommissioned)",
      select: { lastHeartbeatAt: true, decommissionedAt: true },
      resolve: (machine, _args, ctx) => ctx.services.machines.isOnline(machine),
    }),
    acceptingWork: t.boolean({
      description: "Approved, schedulable, not draining and not decommissioned: new work may be placed here (when online)",
      select: { approval: true, schedulable: true, drainingSince: true, decommissionedAt: true },
      resolve: (m) => m.approval === "APPROVED" && m.schedulable && !m.drainingSince && !m.decommissionedAt,
    }),
    draining: t.boolean({ select: { drainingSince: true }, resolve: (m) => m.drainingSince !== null }),
    drainingSince: t.expose("drainingSince", { type: "DateTime", nullable: true }),
    lastHeartbeatAt: t.expose("lastHeartbeatAt", { type: "DateTime", nullable: true }),
    cpuPercent: t.exposeFloat("cpuPercent", { nullable: true, description: "From the last heartbeat, 0-100" }),
    memoryPercent: t.exposeFloat("memoryPercent", { nullable: true, description: "From the last heartbeat, 0-100" }),
    diskPercent: t.exposeFloat("diskPercent", { nullable: true, description: "From the last heartbeat, 0-100" }),
    credentialPrefix: t.exposeString("credentialPrefix", { description: "The first characters of its current credential" }),
    credentialRotatedAt: t.expose("credentialRotatedAt", { type: "DateTime", nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    decommissionedAt: t.expose("decommissionedAt", { type: "DateTime", nullable: true }),
    workers: t.relatedConnection("workers", {
      cursor: "id",
      ...pageSize,
      totalCount: true,
      description: "Inventory: the workers placed on it (Spunto node inventory), newest first",
      args: { status: t.arg({ type: [WorkerStatusEnum], description: "Only these statuses" }) },
      query: (args) => ({
        where: args.status ? { status: { in: args.status } } : {},
        orderBy: newestFirst,
      }),
    }),
    tasks: t.relatedConnection("tasks", {
      cursor: "id",
      ...pageSize,
      totalCount: true,
      description: "Inventory: the tasks it holds or ran (api-web machine tasks), newest first",
      args: { status: t.arg({ type: [TaskStatusEnum], description: "Only these statuses" }) },
      query: (args) => ({
        where: args.status ? { status: { in: args.status } } : {},
        orderBy: newestFirst,
      }),
    }),
    enrollmentToken: t.relation("enrollmentToken", {
      nullable: true,
      description: "The token it registered with (workspace admins only)",
      authScopes: (machine, _args, ctx) => ctx.services.machines.requireAdmin(ctx, machine.workspaceId),
    }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  machines: t.relatedConnection("machines", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "The workspace's machines, newest first. Without `status`, decommissioned machines are left out.",
    args: {
      status: t.arg({ type: [MachineStatusEnum], description: "Any of these (DECOMMISSIONED to see decommissioned machines)" }),
      approval: t.arg({ type: [MachineApprovalEnum] }),
      group: t.arg.string(),
      label: t.arg.string({ description: "Has this label" }),
      capability: t.arg.string({ description: "Has this capability" }),
      schedulable: t.arg.boolean(),
      search: t.arg.string({ description: "Part of the name or externalId, any case" }),
    },
    query: (args, ctx) => {
      const and: Prisma.MachineWhereInput[] = [
        args.status?.length ? ctx.services.machines.statusFilter(args.status) : { decommissionedAt: null },
      ];
      if (args.approval?.length) and.push({ approval: { in: args.approval } });
      if (args.group != null) and.push({ group: args.group });
      if (args.label != null) and.push({ labels: { has: args.label } });
      if (args.capability != null) and.push({ capabilities: { has: args.capability } });
      if (args.schedulable != null) and.push({ schedulable: args.schedulable });
      const search = args.search?.trim();
      if (search) {
        and.push({
          OR: [
            { name: { contains: search, mode: "insensitive" } },
            { externalId: { contains: search, mode: "insensitive" } },
          ],
        });
      }
      return { where: { AND: and }, orderBy: newestFirst };
    },
  }),
  enrollmentTokens: t.relatedConnection("enrollmentTokens", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Enrollment tokens, newest first (workspace admins only)",
    authScopes: (workspace, _args, ctx) => ctx.services.machines.requireAdmin(ctx, workspace.id),
    args: { status: t.arg({ type: [EnrollmentTokenStatusEnum], description: "Any of these" }) },
    query: (args, ctx) => ({
      where: args.status?.length ? ctx.services.machines.tokenStatusFilter(args.status) : {},
      orderBy: newestFirst,
    }),
  }),
}));

const FleetOverviewType = builder
  .objectRef<Record<"total" | "online" | "offline" | "draining" | "drained" | "pendingApproval" | "decommissioned" | "runningTasks" | "pendingTasks" | "liveWorkers", number>>(
    "FleetOverview",
  )
  .implement({
    description: "Fleet counts (api-v1 workers overview). online + offline + draining + drained = total; decommissioned machines are counted apart.",
    fields: (t) => ({
      total: t.exposeInt("total", { description: "Machines not decommissioned" }),
      online: t.exposeInt("online", { description: "Status ONLINE" }),
      offline: t.exposeInt("offline", { description: "Status OFFLINE" }),
      draining: t.exposeInt("draining", { description: "Status DRAINING" }),
      drained: t.exposeInt("drained", { description: "Status DRAINED" }),
      pendingApproval: t.exposeInt("pendingApproval", { description: "Not decommissioned, approval PENDING" }),
      decommissioned: t.exposeInt("decommissioned"),
      runningTasks: t.exposeInt("runningTasks", { description: "Tasks RUNNING in the workspace" }),
      pendingTasks: t.exposeInt("pendingTasks", { description: "Tasks PENDING (queued) in the workspace" }),
      liveWorkers: t.exposeInt("liveWorkers", { description: "Workers DEPLOYING or RUNNING in the workspace" }),
    }),
  });

const CreateEnrollmentTokenInput = builder.inputType("CreateEnrollmentTokenInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    name: t.string({ required: true, description: "1-100 characters" }),
    labels: t.stringList({ description: "Given to the machine that registers with it (at most 50)" }),
    expiresInSeconds: t.int({ description: "60 seconds to 30 days (2592000); default 24 hours" }),
    idempotencyKey: t.string({ description: `${IDEMPOTENCY_KEY_DESCRIPTION} A replay answers token: null (the secret is shown only once).` }),
  }),
});

const CreateEnrollmentTokenPayload = builder
  .objectRef<{ id: string; token: string | null }>("CreateEnrollmentTokenPayload")
  .implement({
    fields: (t) => ({
      enrollmentToken: t.prismaField({
        type: EnrollmentTokenType,
        resolve: (query, payload, _args, ctx) => ctx.prisma.enrollmentToken.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      token: t.string({
        nullable: true,
        description: "The secret token (spe_...). Shown only here, once: hand it to the machine now. Null when an idempotent retry replays the first answer.",
        resolve: (payload) => payload.token,
      }),
    }),
  });

const RegisterMachineInput = builder.inputType("RegisterMachineInput", {
  fields: (t) => ({
    token: t.string({ required: true, description: "The enrollment token (spe_...); it is spent by this registration" }),
    name: t.string({ required: true, description: "1-100 characters" }),
    externalId: t.string({ description: "The machine's own id for itself (hostname, api-web machineId); unique in the workspace" }),
    capabilities: t.stringList({ description: "At most 50, no spaces" }),
    labels: t.stringList({ description: "Added to the token's labels (at most 50, no spaces)" }),
    hardware: t.field({ type: "JSON", description: "A JSON object, at most 16 KB (cpu cores, memory, os, ip ...)" }),
  }),
});

const CreateMachineInput = builder.inputType("CreateMachineInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    name: t.string({ required: true, description: "1-100 characters" }),
    externalId: t.string({ description: "The machine's own id for itself (hostname); unique in the workspace" }),
    capabilities: t.stringList({ description: "At most 50, no spaces" }),
    labels: t.stringList({ description: "At most 50, no spaces" }),
    hardware: t.field({ type: "JSON", description: "A JSON object, at most 16 KB" }),
    group: t.string({ description: "api-v1 worker group" }),
    maxAgents: t.int({ description: "How many agents may live on it (api-v1 max_agents); left out: no limit" }),
    idempotencyKey: t.string({ description: `${IDEMPOTENCY_KEY_DESCRIPTION} A replay answers null secrets (they are shown only once).` }),
  }),
});

const MachineAccessToken = builder.objectRef<{ token: string; expiresAt: Date }>("MachineAccessToken").implement({
  description:
    "A short-lived bearer token for the machine (api-web's worker JWT), good until it expires or the machine's credential is rotated or recovered.",
  fields: (t) => ({
    token: t.exposeString("token"),
    expiresAt: t.expose("expiresAt", { type: "DateTime" }),
  }),
});

const MachineSecretsPayload = builder
  .objectRef<{ id: string; credential: string; recoverySecret: string }>("MachineSecretsPayload")
  .implement({
    description: "A machine and its new secrets, shown only here, once.",
    fields: (t) => ({
      machine: t.prismaField({
        type: MachineType,
        // The caller holds the machine's new credential: it may read the machine itself, and
        // through it only what the machine may (its own work), not the workspace.
        grantScopes: ["machineSecrets"],
        resolve: (query, payload, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      credential: t.exposeString("credential", { description: "The machine's bearer credential (spm_...): send it as `Authorization: Bearer <credential>`" }),
      recoverySecret: t.exposeString("recoverySecret", {
        description: "Keep it apart from the credential (spr_...): recoverMachineCredential trades it for a new credential",
      }),
      accessToken: t.field({
        type: MachineAccessToken,
        description: "A short-lived token standing for the new credential, for clients that authenticate machines with JWTs (api-web)",
        resolve: (payload, _args, ctx) => ctx.services.machineTokens.issue({ machineId: payload.id, credentialHash: sha256(payload.credential) }),
      }),
    }),
  });

const CreateMachinePayload = builder
  .objectRef<{ id: string; credential: string | null; recoverySecret: string | null }>("CreateMachinePayload")
  .implement({
    fields: (t) => ({
      machine: t.prismaField({
        type: MachineType,
        resolve: (query, payload, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      credential: t.string({
        nullable: true,
        description: "The machine's bearer credential (spm_...), shown once; null when an idempotent retry replays the first answer",
        resolve: (p) => p.credential,
      }),
      recoverySecret: t.string({ nullable: true, description: "The recovery secret (spr_...), shown once", resolve: (p) => p.recoverySecret }),
    }),
  });

const MachineHeartbeatInput = builder.inputType("MachineHeartbeatInput", {
  fields: (t) => ({
    machineId: t.id({ description: "Only when a user (api-v1) reports for a machine; a machine reports for itself" }),
    cpuPercent: t.float({ description: "0-100" }),
    memoryPercent: t.float({ description: "0-100" }),
    diskPercent: t.float({ description: "0-100" }),
    capabilities: t.stringList({ description: "Replaces the capabilities when given" }),
    hardware: t.field({ type: "JSON", description: "Replaces the hardware info when given (a JSON object, at most 16 KB)" }),
  }),
});

const MachineHeartbeatPayload = builder
  .objectRef<{ id: string; leasedTaskIds: string[]; leaseSeconds: number; offlineAfterSeconds: number }>("MachineHeartbeatPayload")
  .implement({
    description: "What the machine must know now: whether it may take work, and which task leases are still its own.",
    fields: (t) => ({
      machine: t.prismaField({
        type: MachineType,
        description: "Its state: approval, schedulable, draining, acceptingWork, status",
        resolve: (query, payload, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      leasedTaskIds: t.idList({
        resolve: (p) => p.leasedTaskIds,
        description:
          "Tasks whose lease this heartbeat renewed. A task the machine works on that is missing here has lost its lease (it expired): stop working on it.",
      }),
      leaseSeconds: t.exposeInt("leaseSeconds", { description: "How long a renewed lease lasts" }),
      offlineAfterSeconds: t.exposeInt("offlineAfterSeconds", { description: "Without a heartbeat for this long the machine shows OFFLINE; send them well within it" }),
    }),
  });

const RotateMachineCredentialPayload = builder
  .objectRef<{ id: string; credential: string }>("RotateMachineCredentialPayload")
  .implement({
    fields: (t) => ({
      machine: t.prismaField({
        type: MachineType,
        resolve: (query, payload, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      credential: t.exposeString("credential", { description: "The new credential (spm_...), shown once; the old one no longer works" }),
    }),
  });

const RecoverMachineCredentialInput = builder.inputType("RecoverMachineCredentialInput", {
  description: "The machine by its id or by the externalId it chose at registration (api-web machineId); give one.",
  fields: (t) => ({
    machineId: t.id(),
    externalId: t.string(),
    recoverySecret: t.string({ required: true, description: "spr_..." }),
  }),
});

const UpdateMachineInput = builder.inputType("UpdateMachineInput", {
  fields: (t) => ({
    name: t.string({ description: "1-100 characters" }),
    labels: t.stringList({ description: "Replaces the labels" }),
    group: t.string({ description: "null clears it" }),
  }),
});

const DecommissionMachinePayload = builder
  .objectRef<{ id: string; requeuedTaskIds: string[]; failedTaskIds: string[]; failedWorkerIds: string[] }>("DecommissionMachinePayload")
  .implement({
    fields: (t) => ({
      machine: t.prismaField({
        type: MachineType,
        resolve: (query, payload, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
      }),
      requeuedTaskIds: t.idList({ description: "ASSIGNED and SUSPENDED tasks, back to PENDING", resolve: (p) => p.requeuedTaskIds }),
      failedTaskIds: t.idList({ description: "RUNNING tasks, now FAILED with the reason", resolve: (p) => p.failedTaskIds }),
      failedWorkerIds: t.idList({ description: "Its workers (all but DESTROYED), now FAILED and without a machine", resolve: (p) => p.failedWorkerIds }),
    }),
  });

builder.queryFields((t) => ({
  machine: t.prismaField({
    type: MachineType,
    description: "A machine of a workspace the viewer belongs to.",
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Machine", String(args.id), query, (id) => ctx.prisma.machine.findUnique({ ...query, where: { id } })),
  }),
  currentMachine: t.prismaField({
    type: MachineType,
    description: "The calling machine (machine credential only).",
    authScopes: { machine: true },
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: requireMachine(ctx.viewer).machineId } }),
  }),
  enrollmentToken: t.prismaField({
    type: EnrollmentTokenType,
    description: "An enrollment token, its status and the machine it became (workspace admins).",
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const token = await ctx.services.machines.getEnrollmentToken(ctx, String(id));
      return ctx.prisma.enrollmentToken.findUniqueOrThrow({ ...query, where: { id: token.id } });
    },
  }),
  fleetOverview: t.field({
    type: FleetOverviewType,
    description: "Machine, task and worker counts of a workspace.",
    authScopes: { read: true },
    args: { workspaceId: t.arg.id({ required: true }) },
    resolve: (_root, { workspaceId }, ctx) => ctx.services.machines.fleetOverview(ctx, String(workspaceId)),
  }),
}));

builder.mutationFields((t) => ({
  createEnrollmentToken: t.field({
    type: CreateEnrollmentTokenPayload,
    description: "A single-use token for registering one machine (workspace admins). The token is shown once.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateEnrollmentTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.machines.createEnrollmentToken(ctx, input),
  }),
  revokeEnrollmentToken: t.prismaField({
    type: EnrollmentTokenType,
    description: "Revokes an ACTIVE enrollment token (workspace admins); a USED, EXPIRED or REVOKED one is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const token = await ctx.services.machines.revokeEnrollmentToken(ctx, String(id));
      return ctx.prisma.enrollmentToken.findUniqueOrThrow({ ...query, where: { id: token.id } });
    },
  }),
  registerMachine: t.field({
    type: MachineSecretsPayload,
    description:
      "A new machine registers with an enrollment token (no other credential: the token is it). The token is spent; the machine gets its credential and recovery secret, shown once. A bad, used, expired or revoked token is NOT_AUTHENTICATED.",
    authScopes: { public: true },
    args: { input: t.arg({ type: RegisterMachineInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.machines.register(ctx, input),
  }),
  createMachine: t.field({
    type: CreateMachinePayload,
    description:
      "A user registers a machine directly (Spunto register node, api-v1 register worker). A workspace admin's machine is APPROVED; a member's is PENDING until an admin approves it.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateMachineInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.machines.create(ctx, input),
  }),
  machineHeartbeat: t.field({
    type: MachineHeartbeatPayload,
    description:
      "The machine reports it is alive, with its usage; this renews the leases of the tasks it holds (an expired lease stays expired). A user with write access may report for a machine by machineId (api-v1).",
    authScopes: { machine: true, write: true },
    args: { input: t.arg({ type: MachineHeartbeatInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.machines.heartbeat(ctx, input),
  }),
  rotateMachineCredential: t.field({
    type: RotateMachineCredentialPayload,
    description:
      "A new credential; the old one stops working at once. A machine rotates its own (no machineId); a workspace admin rotates any machine's (Spunto rotate token).",
    authScopes: { machine: true, write: true },
    args: { machineId: t.arg.id() },
    resolve: (_root, { machineId }, ctx) => ctx.services.machines.rotateCredential(ctx, machineId == null ? null : String(machineId)),
  }),
  refreshMachineAccessToken: t.field({
    type: MachineAccessToken,
    description: "A machine trades its current credential or a still-valid machine token for a fresh machine token (api-web refresh-token).",
    authScopes: { machine: true },
    resolve: (_root, _args, ctx) => {
      const machine = requireMachine(ctx.viewer);
      return ctx.services.machineTokens.issue({ machineId: machine.machineId, credentialHash: machine.credentialHash });
    },
  }),
  recoverMachineCredential: t.field({
    type: MachineSecretsPayload,
    description:
      "A machine that lost its credential trades its recovery secret for a new credential and a new recovery secret (both old ones stop working). A wrong secret or unknown machine is NOT_AUTHENTICATED.",
    authScopes: { public: true },
    args: { input: t.arg({ type: RecoverMachineCredentialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.machines.recover(ctx, input),
  }),
  updateMachine: t.prismaField({
    type: MachineType,
    description: "Renames, relabels or regroups a machine (workspace admins).",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateMachineInput, required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.machines.update(ctx, String(args.id), args.input);
      return ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  approveMachine: t.prismaField({
    type: MachineType,
    description: "Approves (approved: true) or rejects a machine, optionally setting its group (api-v1; workspace admins). A rejected machine's credential is refused.",
    authScopes: { write: true },
    args: {
      id: t.arg.id({ required: true }),
      approved: t.arg.boolean({ required: true }),
      group: t.arg.string({ description: "Sets the group; null clears it" }),
    },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.machines.approve(ctx, String(args.id), { approved: args.approved, group: args.group });
      return ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  setMachineSchedulable: t.prismaField({
    type: MachineType,
    description: "The operator switch (workspace admins): an unschedulable machine gets no new work, whatever its drain state.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }), schedulable: t.arg.boolean({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.machines.setSchedulable(ctx, String(args.id), args.schedulable);
      return ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  drainMachine: t.prismaField({
    type: MachineType,
    description: "Stops new work on a machine (workspace members); it shows DRAINING until what it holds ends, then DRAINED.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.machines.drain(ctx, String(args.id));
      return ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  undrainMachine: t.prismaField({
    type: MachineType,
    description: "Cancels a drain (workspace members).",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.machines.undrain(ctx, String(args.id));
      return ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  decommissionMachine: t.field({
    type: DecommissionMachinePayload,
    description:
      "Takes a machine out for good (workspace admins), in one transaction: ASSIGNED and SUSPENDED tasks go back to the queue, RUNNING tasks fail with the reason, its workers fail and its services fail and lose the machine; its credential stops working. Twice is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }), reason: t.arg.string({ description: "Recorded on failed tasks and workers; 1-500 characters" }) },
    resolve: (_root, args, ctx) => ctx.services.machines.decommission(ctx, String(args.id), { reason: args.reason }),
  }),
}));
