// `machineAssignments`: the machine agent's push channel (see assignments.ts). Each item carries the
// machine's whole current assignment, read when the item is sent: the agent reconciles what it runs
// with it, so a lost or merged item costs nothing but the wait for the next one.
import { builder } from "../../schema/builder.js";
import { ServiceType } from "../deployment/deployment.schema.js";
import { unwrap } from "../shared/live.js";
import { TaskType } from "../task/task.schema.js";
import { WorkerType } from "../worker/worker.schema.js";
import type { AssignmentsItem } from "./assignments.js";
import { MachineType } from "./machine.schema.js";

/** Held tasks sent per item; a machine holds at most what it claimed (20 per claim). */
const HELD_TASKS_SENT = 100;

const MachineAssignmentsRef = builder.objectRef<AssignmentsItem>("MachineAssignments").implement({
  description: "What the calling machine must run and may take, as it is when the item is sent.",
  fields: (t) => ({
    at: t.expose("at", { type: "DateTime", description: "When this item was read" }),
    claimable: t.exposeBoolean("claimable", {
      description: "A task this machine may claim is waiting (claimTasks takes it); false while it is draining, unschedulable or not approved",
    }),
    machine: t.prismaField({
      type: MachineType,
      description: "The machine: draining, schedulable, approval",
      resolve: (query, item, _args, ctx) => ctx.prisma.machine.findUniqueOrThrow({ ...query, where: { id: item.machineId } }),
    }),
    workers: t.prismaField({
      type: [WorkerType],
      description: "The workers it must run now (DEPLOYING or RUNNING) with their code and settings; anything else it runs, it stops",
      resolve: (query, _item, _args, ctx) => ctx.prisma.worker.findMany({ ...query, ...ctx.services.workers.assignedArgs(ctx) }),
    }),
    services: t.prismaField({
      type: [ServiceType],
      description: "The services it must run now (DEPLOYING or RUNNING); anything else it runs, it stops",
      resolve: (query, _item, _args, ctx) => ctx.prisma.service.findMany({ ...query, ...ctx.services.deployments.assignedArgs(ctx) }),
    }),
    tasks: t.prismaField({
      type: [TaskType],
      description: `The tasks it holds (ASSIGNED, RUNNING, SUSPENDED) in claim order, at most ${HELD_TASKS_SENT}: a task it works on that is missing was cancelled or lost its lease`,
      resolve: (query, _item, _args, ctx) =>
        ctx.prisma.task.findMany({
          ...query,
          where: ctx.services.tasks.assignedFilter(ctx, null),
          orderBy: [{ priorityRank: "desc" }, { createdAt: "asc" }, { id: "asc" }],
          take: HELD_TASKS_SENT,
        }),
    }),
  }),
});

builder.subscriptionFields((t) => ({
  machineAssignments: t.field({
    type: MachineAssignmentsRef,
    description:
      "For a machine (its own credential): its assignments now, then again each time they change (workers and services to run or stop, " +
      "new settings, tasks cancelled or confirmed, drain, a task to claim). Ends with an error once the credential is rotated, or the " +
      "machine decommissioned or rejected. Missed items are not replayed: each item is the whole state.",
    authScopes: { machine: true },
    subscribe: (_root, _args, ctx) => ctx.services.assignments.open(ctx),
    resolve: (item) => unwrap(item),
  }),
}));
