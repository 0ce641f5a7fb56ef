import { readById } from "../shared/point-read.js";
import type { Prisma, ServiceStatus } from "../../generated/prisma/client.js";
import { builder, pageSize } from "../../schema/builder.js";
import { maySeeSecrets, membersOrAssignedMachine, workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { challengeRecordName, MAX_SERVICES, SERVICE_STATUSES } from "./deployment.service.js";

export const ServiceStatusEnum = builder.enumType("ServiceStatus", {
  description:
    "deploy: any -> DEPLOYING (revision + 1); start: STOPPED|FAILED -> DEPLOYING; the machine reports DEPLOYING -> RUNNING or -> FAILED; stop: any but STOPPED -> STOPPED.",
  values: SERVICE_STATUSES,
});

const DomainStatusEnum = builder.enumType("DomainStatus", {
  values: {
    NONE: { description: "No domain" },
    PENDING: { description: "Publish the challenge TXT record, then call verifyServiceDomain" },
    VERIFIED: { description: "The TXT record held the token at the last check" },
    FAILED: { description: "The last check did not find the token" },
  } as const,
});

const DeploymentStatusEnum = builder.enumType("DeploymentStatus", {
  description: "A summary of the services' statuses",
  values: {
    EMPTY: { description: "No services" },
    STOPPED: { description: "Every service is stopped" },
    DEPLOYING: { description: "Some service is deploying and none failed" },
    RUNNING: { description: "Every service runs" },
    PARTIAL: { description: "Some run, some are stopped" },
    FAILED: { description: "Some service failed" },
  } as const,
});

function summarize(statuses: ServiceStatus[]) {
  if (statuses.length === 0) return "EMPTY" as const;
  if (statuses.includes("FAILED")) return "FAILED" as const;
  if (statuses.includes("DEPLOYING")) return "DEPLOYING" as const;
  if (statuses.every((s) => s === "RUNNING")) return "RUNNING" as const;
  if (statuses.every((s) => s === "STOPPED")) return "STOPPED" as const;
  return "PARTIAL" as const;
}

interface DomainChallenge {
  recordName: string;
  value: string;
}

const DomainChallengeType = builder.objectRef<DomainChallenge>("DomainChallenge").implement({
  description: "The DNS record that proves a domain: publish it, then call verifyServiceDomain.",
  fields: (t) => ({
    recordType: t.string({ resolve: () => "TXT" }),
    recordName: t.exposeString("recordName", { description: "_spindle-challenge.<domain>" }),
    value: t.exposeString("value", { description: "The token the record must hold" }),
  }),
});

export const ServiceType = builder.prismaObject("Service", {
  authScopes: membersOrAssignedMachine,
  description: "A service of a deployment: an image or a command, environment, an optional domain.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    deploymentId: t.exposeID("deploymentId"),
    deployment: t.relation("deployment"),
    name: t.exposeString("name"),
    image: t.exposeString("image", { nullable: true }),
    command: t.exposeString("command", { nullable: true }),
    env: t.field({
      type: "JSON",
      nullable: true,
      description: "Environment variables, an object of strings. Null for viewers: only members and above, and the machine that runs the service, see them",
      resolve: async (row, _args, ctx) => ((await maySeeSecrets(ctx, row)) ? row.env : null),
    }),
    domain: t.exposeString("domain", { nullable: true }),
    domainStatus: t.expose("domainStatus", { type: DomainStatusEnum }),
    domainChallenge: t.field({
      type: DomainChallengeType,
      nullable: true,
      description: "What to publish to prove the domain; null without a domain",
      resolve: (s) => (s.domain && s.domainToken ? { recordName: challengeRecordName(s.domain), value: s.domainToken } : null),
    }),
    domainCheckedAt: t.expose("domainCheckedAt", { type: "DateTime", nullable: true }),
    status: t.expose("status", { type: ServiceStatusEnum }),
    statusReason: t.exposeString("statusReason", { nullable: true }),
    revision: t.exposeInt("revision", { description: "Bumped by every deploy; machines report against it" }),
    restartCount: t.exposeInt("restartCount", { description: "Times its machine restarted it after it exited on its own, over its life" }),
    lastRestartAt: t.expose("lastRestartAt", { type: "DateTime", nullable: true }),
    machineId: t.exposeID("machineId", { nullable: true }),
    machine: t.relation("machine", { nullable: true, description: "Where it runs; null until deployed or while waiting for a machine" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

export const DeploymentType = builder.prismaObject("Deployment", {
  authScopes: workspaceMembers,
  description: "A named set of services of a workspace, deployed, started and stopped together or one by one.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    workspace: t.relation("workspace"),
    name: t.exposeString("name"),
    revision: t.exposeInt("revision", { description: "Bumped by every deploy of all the services" }),
    services: t.relation("services", { description: "By name", query: { orderBy: [{ name: "asc" }, { id: "asc" }] } }),
    serviceCount: t.relationCount("services"),
    status: t.field({
      type: DeploymentStatusEnum,
      select: { services: { select: { status: true } } },
      resolve: (d) => summarize(d.services.map((s) => s.status)),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  deployments: t.relatedConnection("deployments", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Deployments, newest first",
    args: { search: t.arg.string({ description: "Part of the name, any case" }) },
    query: (args) => {
      const where: Prisma.DeploymentWhereInput = {};
      if (args.search) where.name = { contains: args.search, mode: "insensitive" };
      return { where, orderBy: [{ createdAt: "desc" }, { id: "desc" }] };
    },
  }),
}));

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

const serviceInputFields = (t: PothosSchemaTypes.InputFieldBuilder<Types, "InputObject">) => ({
  image: t.string({ description: "The image to run (give an image or a command, or both)" }),
  command: t.string(),
  env: t.field({ type: "JSON", description: "An object of string values, at most 64 KiB" }),
  domain: t.string({ description: "A host name; it starts PENDING until verified with its TXT record" }),
});

const ServiceSpecInput = builder.inputType("ServiceSpecInput", {
  fields: (t) => ({ name: t.string({ required: true }), ...serviceInputFields(t) }),
});

const CreateDeploymentInput = builder.inputType("CreateDeploymentInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    name: t.string({ required: true, description: "Unique in the workspace" }),
    services: t.field({ type: [ServiceSpecInput], description: `At most ${MAX_SERVICES}` }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateDeploymentInput = builder.inputType("UpdateDeploymentInput", {
  fields: (t) => ({ id: t.id({ required: true }), name: t.string({ required: true }) }),
});

const AddServiceInput = builder.inputType("AddServiceInput", {
  fields: (t) => ({
    deploymentId: t.id({ required: true }),
    name: t.string({ required: true, description: "Unique in the deployment" }),
    ...serviceInputFields(t),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateServiceInput = builder.inputType("UpdateServiceInput", {
  description: "Left out: unchanged. null clears image, command or domain. Changes to what runs take effect on the next deploy.",
  fields: (t) => ({ id: t.id({ required: true }), name: t.string(), ...serviceInputFields(t) }),
});

const DeploymentTargetInput = builder.inputType("DeploymentTargetInput", {
  fields: (t) => ({
    id: t.id({ required: true, description: "The deployment" }),
    serviceId: t.id({ description: "Only this service of it; all services when left out" }),
  }),
});

const ReportServiceStatusInput = builder.inputType("ReportServiceStatusInput", {
  fields: (t) => ({
    serviceId: t.id({ required: true }),
    revision: t.int({ required: true }),
    status: t.field({
      type: builder.enumType("ReportedServiceStatus", {
        values: {
          RUNNING: { description: "The revision came up" },
          FAILED: { description: "The revision could not run (or gave up restarting)" },
          RESTARTED: { description: "A RUNNING service exited on its own and was started again (the reason says how it ended)" },
        } as const,
      }),
      required: true,
    }),
    reason: t.string(),
  }),
});

const VerifyServiceDomainPayload = builder.objectRef<{ id: string; verified: boolean; reason: string | null }>("VerifyServiceDomainPayload").implement({
  fields: (t) => ({
    service: t.prismaField({
      type: ServiceType,
      resolve: (query, payload, _args, ctx) => ctx.prisma.service.findUniqueOrThrow({ ...query, where: { id: payload.id } }),
    }),
    verified: t.exposeBoolean("verified"),
    reason: t.exposeString("reason", { nullable: true, description: "Why it failed (no record, another value, lookup error)" }),
  }),
});

builder.queryFields((t) => ({
  deployment: t.prismaField({
    type: DeploymentType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Deployment", String(args.id), query, (id) => ctx.prisma.deployment.findUnique({ ...query, where: { id } })),
  }),
  service: t.prismaField({
    type: ServiceType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Service", String(args.id), query, (id) => ctx.prisma.service.findUnique({ ...query, where: { id } })),
  }),
  assignedServices: t.prismaField({
    type: [ServiceType],
    description: "For a machine: the services it must run now (DEPLOYING or RUNNING). Anything else it runs, it should stop.",
    authScopes: { machine: true },
    resolve: (query, _root, _args, ctx) => ctx.prisma.service.findMany({ ...query, ...ctx.services.deployments.assignedArgs(ctx) }),
  }),
}));

builder.mutationFields((t) => {
  const reload = (ctx: { prisma: Prisma.TransactionClient }, query: object, id: string) =>
    ctx.prisma.deployment.findUniqueOrThrow({ ...query, where: { id } });
  const onTarget = (action: "deploy" | "start" | "stop", description: string) =>
    t.prismaField({
      type: DeploymentType,
      description,
      authScopes: { write: true },
      args: { input: t.arg({ type: DeploymentTargetInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments[action](ctx, args.input);
        return reload(ctx, query, id);
      },
    });
  return {
    createDeployment: t.prismaField({
      type: DeploymentType,
      authScopes: { write: true },
      description: "A new deployment with its services (all STOPPED until deployed). A name taken in the workspace is a CONFLICT.",
      args: { input: t.arg({ type: CreateDeploymentInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments.create(ctx, args.input);
        return reload(ctx, query, id);
      },
    }),
    updateDeployment: t.prismaField({
      type: DeploymentType,
      authScopes: { write: true },
      description: "Renames a deployment",
      args: { input: t.arg({ type: UpdateDeploymentInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments.update(ctx, args.input);
        return reload(ctx, query, id);
      },
    }),
    deleteDeployment: t.id({
      authScopes: { write: true },
      description: "Deletes a deployment and its services; answers the deleted id. Machines stop what they no longer find in assignedServices.",
      args: { id: t.arg.id({ required: true }) },
      resolve: async (_root, args, ctx) => (await ctx.services.deployments.remove(ctx, String(args.id))).id,
    }),
    addService: t.prismaField({
      type: ServiceType,
      authScopes: { write: true },
      description: "Adds a STOPPED service to a deployment",
      args: { input: t.arg({ type: AddServiceInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments.addService(ctx, args.input);
        return ctx.prisma.service.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    updateService: t.prismaField({
      type: ServiceType,
      authScopes: { write: true },
      args: { input: t.arg({ type: UpdateServiceInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments.updateService(ctx, args.input);
        return ctx.prisma.service.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    removeService: t.prismaField({
      type: DeploymentType,
      authScopes: { write: true },
      description: "Removes a service; answers its deployment",
      args: { id: t.arg.id({ required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { deploymentId } = await ctx.services.deployments.removeService(ctx, String(args.id));
        return reload(ctx, query, deploymentId);
      },
    }),
    deployDeployment: onTarget(
      "deploy",
      "Deploys all services (deployment revision + 1) or one: each goes DEPLOYING with revision + 1, on the least loaded machine that qualifies",
    ),
    startDeployment: onTarget(
      "start",
      "Starts one service (STOPPED|FAILED -> DEPLOYING), or every STOPPED or FAILED service; CONFLICT when nothing can start",
    ),
    stopDeployment: onTarget("stop", "Stops one service, or every service not STOPPED; CONFLICT when nothing can stop"),
    verifyServiceDomain: t.field({
      type: VerifyServiceDomainPayload,
      authScopes: { write: true },
      description: "Looks up the TXT record _spindle-challenge.<domain>: VERIFIED when it holds the token, FAILED (with the reason) otherwise",
      args: { id: t.arg.id({ required: true }) },
      resolve: (_root, args, ctx) => ctx.services.deployments.verifyDomain(ctx, String(args.id)),
    }),
    reportServiceStatus: t.prismaField({
      type: ServiceType,
      authScopes: { machine: true },
      description: "For the service's machine: the revision came up (DEPLOYING -> RUNNING), could not run (-> FAILED), or was RESTARTED after it exited on its own (restartCount + 1, stays RUNNING). An old revision is a CONFLICT.",
      args: { input: t.arg({ type: ReportServiceStatusInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.deployments.reportStatus(ctx, args.input);
        return ctx.prisma.service.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
  };
});

// Where services run, seen from the machine (Spunto node inventory).
builder.prismaObjectFields("Machine", (t) => ({
  services: t.relation("services", {
    description: "Inventory: the services placed on it, by name (Spunto node inventory)",
    args: { status: t.arg({ type: [ServiceStatusEnum], description: "Only these statuses" }) },
    query: (args) => ({
      where: args.status ? { status: { in: args.status } } : {},
      orderBy: [{ name: "asc" as const }, { id: "asc" as const }],
    }),
  }),
}));
