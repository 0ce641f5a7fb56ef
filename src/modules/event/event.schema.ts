// Live streams in GraphQL: the workspace event stream (`events`) and the status streams of workers,
// tasks, machines and deployments; `publishWorkspaceEvent` lets administrators post the event
// types no domain change produces (notifications, messages, alerts).
import { builder } from "../../schema/builder.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { PUBLISHABLE_EVENT_TYPES, unwrap, WORKSPACE_EVENT_TYPES } from "../shared/live.js";
import { DeploymentType } from "../deployment/deployment.schema.js";
import { MachineType } from "../machine/machine.schema.js";
import { TaskType } from "../task/task.schema.js";
import { WorkerType } from "../worker/worker.schema.js";
import type { WorkspaceEventItem } from "./event.service.js";

const WorkspaceEventRef = builder.objectRef<WorkspaceEventItem>("WorkspaceEvent").implement({
  description: `A stored event of a workspace: ${WORKSPACE_EVENT_TYPES.join(", ")}.`,
  fields: (t) => ({
    workspaceId: t.exposeID("workspaceId"),
    cursor: t.exposeString("cursor", { description: "1, 2, 3 ... per workspace, in commit order; pass the last one seen as `after` to resume" }),
    type: t.exposeString("type"),
    subjectType: t.exposeString("subjectType", { nullable: true, description: "TASK, WORKER, MACHINE or WORKSPACE" }),
    subjectId: t.exposeID("subjectId", { nullable: true }),
    data: t.field({ type: "JSON", nullable: true, resolve: (e) => e.data }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

const PublishWorkspaceEventInput = builder.inputType("PublishWorkspaceEventInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    type: t.string({ required: true, description: `One of ${PUBLISHABLE_EVENT_TYPES.join(", ")}` }),
    data: t.field({ type: "JSON", required: true, description: "Up to 64 KiB of JSON" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

builder.mutationFields((t) => ({
  publishWorkspaceEvent: t.field({
    type: WorkspaceEventRef,
    description: `Adds an event to the workspace stream (workspace admins): ${PUBLISHABLE_EVENT_TYPES.join(", ")}.`,
    authScopes: { write: true },
    args: { input: t.arg({ type: PublishWorkspaceEventInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.events.publish(ctx, input),
  }),
}));

const idArg = (t: { arg: { id: (options: { required: true }) => any } }) => ({ id: t.arg.id({ required: true }) });

builder.subscriptionFields((t) => ({
  events: t.field({
    type: WorkspaceEventRef,
    description:
      "The workspace's events: those stored after `after` (0 for all that are kept), then live ones, each exactly once in " +
      "cursor order. Without `after`, from now on. Reconnect with the last cursor seen to miss nothing. Ends with an " +
      "error when the viewer leaves the workspace or the credential expires or is revoked.",
    authScopes: { read: true },
    args: {
      workspaceId: t.arg.id({ required: true }),
      types: t.arg.stringList({ description: `Only these types (${WORKSPACE_EVENT_TYPES.join(", ")})` }),
      after: t.arg.string({ description: "A cursor: events after it" }),
    },
    subscribe: (_root, args, ctx) => ctx.services.events.events(ctx, { workspaceId: String(args.workspaceId), types: args.types, after: args.after }),
    resolve: (item) => unwrap(item),
  }),
  workerStatus: t.field({
    type: WorkerType,
    description: "The worker now, then after each change (status, ticks and errors at most once a second). Ends after DESTROYED.",
    authScopes: { read: true },
    args: idArg(t),
    subscribe: (_root, args, ctx) => ctx.services.events.workerStatus(ctx, String(args.id)),
    resolve: (item) => unwrap(item),
  }),
  taskStatus: t.field({
    type: TaskType,
    description: "The task now, then after each change of state or stage. Ends once it SUCCEEDED, FAILED or was CANCELLED.",
    authScopes: { read: true },
    args: idArg(t),
    subscribe: (_root, args, ctx) => ctx.services.events.taskStatus(ctx, String(args.id)),
    resolve: (item) => unwrap(item),
  }),
  machineStatus: t.field({
    type: MachineType,
    description: "The machine now, then after each change (online, offline, draining, drained, approval). Ends after DECOMMISSIONED.",
    authScopes: { read: true },
    args: idArg(t),
    subscribe: (_root, args, ctx) => ctx.services.events.machineStatus(ctx, String(args.id)),
    resolve: (item) => unwrap(item),
  }),
  deploymentStatus: t.field({
    type: DeploymentType,
    description: "The deployment and its services now, then after each change. Ends when the deployment is deleted.",
    authScopes: { read: true },
    args: idArg(t),
    subscribe: (_root, args, ctx) => ctx.services.events.deploymentStatus(ctx, String(args.id)),
    resolve: (item) => unwrap(item),
  }),
}));
