// The workspace event stream and the status streams (workers, tasks, machines, deployments). A
// machine's presence events are written by the machine module (presence.ts). Streams are woken by pub/sub notices and read what they send from the
// database, so they resume by cursor, never hold more than a page per subscriber, and work the same
// across replicas. Authorization is checked when subscribing and again before every read (the
// guard in shared/live.ts: role changed or removed, session or key revoked, credential expired).
import { z } from "zod";
import { requireUser } from "../../auth/viewer.js";
import type { MachineStatus, MachineStatusRow } from "../machine/machine.service.js";
import type { RequestContext } from "../shared/request.js";
import { Prisma } from "../../generated/prisma/client.js";
import type { AccountEvent } from "../../infra/pubsub.js";
import { on, type LiveStreams } from "../../infra/streams.js";
import { notFound, parseInput, requireId } from "../../schema/errors.js";
import { streamCursor } from "../../schema/validation.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { FINISHED_TASK_STATUSES, HELD_TASK_STATUSES } from "../task/task-statuses.js";
import { LIVE_WORKER_STATUSES } from "../worker/worker-statuses.js";
import {
  failureItem,
  type Live,
  PUBLISHABLE_EVENT_TYPES,
  recordEvent,
  WORKSPACE_EVENT_TYPES,
  type StreamFailure,
  type StreamGuards,
} from "../shared/live.js";


/** One item of the `events` subscription (cursor as a string: it is a BigInt). */
export interface WorkspaceEventItem {
  workspaceId: string;
  cursor: string;
  type: string;
  subjectType: string | null;
  subjectId: string | null;
  data: unknown;
  at: Date;
}

/** Status and event streams read again this often without a notice (pub/sub delivers at most once). */
const POLL_MS = 10_000;
/** Account events not yet sent to a slow client; older ones are dropped past this. */
const ACCOUNT_EVENTS_KEPT = 100;

/** Events read per database round trip while replaying; the next page is read once these went out. */
export const EVENT_PAGE = 100;
const MAX_EVENT_DATA_BYTES = 64 * 1024;

const cursorSchema = streamCursor("must be a cursor from an earlier event (digits), or 0 for the start");
const typesSchema = z
  .array(z.enum(WORKSPACE_EVENT_TYPES, { error: `must be one of ${WORKSPACE_EVENT_TYPES.join(", ")}` }))
  .max(WORKSPACE_EVENT_TYPES.length)
  .nullish();
const publishInput = z.object({
  workspaceId: z.uuid("must be a workspace id"),
  type: z.enum(PUBLISHABLE_EVENT_TYPES, { error: `must be one of ${PUBLISHABLE_EVENT_TYPES.join(", ")}` }),
  data: z
    .unknown()
    .refine((value) => value !== undefined && value !== null, "give the event's data (a JSON value)")
    .refine((value) => Buffer.byteLength(JSON.stringify(value ?? null)) <= MAX_EVENT_DATA_BYTES, `must be at most ${MAX_EVENT_DATA_BYTES / 1024} KiB of JSON`),
  idempotencyKey: z.string().nullish(),
});

const toItem = (row: {
  workspaceId: string;
  cursor: bigint;
  type: string;
  subjectType: string | null;
  subjectId: string | null;
  data: Prisma.JsonValue;
  at: Date;
}): WorkspaceEventItem => ({ ...row, cursor: row.cursor.toString() });

/** Stable text of a row for "did it change" checks (BigInt columns as strings). */
const fingerprint = (value: unknown) => JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));

/** What the event service asks of the machine module: a machine's derived status. */
export interface EventCollaborators {
  machineStatusOf(row: MachineStatusRow): MachineStatus;
}

export function createEventService(deps: DomainDeps & { live: Live; streams: LiveStreams; guards: StreamGuards }, collaborators: EventCollaborators) {
  const { prisma, streams, guards } = deps;
  const { work, live } = deps;

  /**
   * A status stream: the subject as it is now, then again each time it changed (notices wake it;
   * a burst of notices makes one read; a read that finds nothing new sends nothing). Streams of one
   * subject woken together share the load.
   */
  async function statusStream<T>(
    ctx: RequestContext,
    subject: { kind: string; id: string; workspaceId: string },
    load: () => Promise<{ row: T; compare: unknown; last: boolean } | null>,
  ): Promise<AsyncIterable<T | StreamFailure>> {
    let previous: string | undefined;
    return streams.open<T | StreamFailure>({
      watches: [on("status", subject.id, (_notice, control) => control.wake())],
      guard: await guards.forUser(ctx, subject.workspaceId),
      pollMs: POLL_MS,
      async read() {
        const loaded = await streams.gather(`status:${subject.kind}:${subject.id}`, null, load);
        if (!loaded) return { items: [], end: { reason: "FINISHED" } };
        // The role (read afresh by the guard) is part of what the viewer sees: a demoted member gets
        // the subject again at once, its secrets now hidden.
        const now = fingerprint({ role: await ctx.access.roleIn(subject.workspaceId), compare: loaded.compare });
        const end = loaded.last ? ({ reason: "FINISHED" } as const) : undefined;
        if (now === previous) return { items: [], end };
        previous = now;
        return { items: [loaded.row], end };
      },
      last: failureItem,
    });
  }


  const service = {
    /** An administrator's event for the workspace stream (notification, message.new, system.alert). */
    async publish(ctx: RequestContext, raw: unknown): Promise<WorkspaceEventItem> {
      const input = parseInput(publishInput, raw);
      await ctx.access.require(input.workspaceId, "admin");
      const { id } = await work.create({ viewer: ctx.viewer, operation: "publishWorkspaceEvent", key: input.idempotencyKey, input }, async (tx) => {
          const stored = await recordEvent(tx, {
            workspaceId: input.workspaceId,
            type: input.type,
            subjectType: "WORKSPACE",
            subjectId: input.workspaceId,
            data: input.data as Prisma.InputJsonValue,
          });
          await audit(tx, ctx, {
            workspaceId: input.workspaceId,
            action: "workspace.event.publish",
            targetType: "Workspace",
            targetId: input.workspaceId,
            data: { type: input.type, cursor: stored.cursor.toString() },
          });
          return { id: stored.cursor.toString() };
        });
      const row = await prisma.workspaceEvent.findUniqueOrThrow({
        where: { workspaceId_cursor: { workspaceId: input.workspaceId, cursor: BigInt(id) } },
      });
      return toItem(row);
    },

    /**
     * Stored events after `after` (or, without it, from now on), then live ones, each once and in
     * cursor order. A client that reconnects with the last cursor it saw misses nothing.
     */
    async events(ctx: RequestContext, args: { workspaceId: string; types?: readonly string[] | null; after?: string | null }) {
      const workspaceId = requireId(args.workspaceId, "workspace");
      const types = parseInput(typesSchema, args.types, "types");
      const after = args.after != null ? parseInput(cursorSchema, args.after, "after") : null;
      await ctx.access.require(workspaceId, "read");
      const guard = await guards.forUser(ctx, workspaceId);
      let last = after ?? (await prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId }, select: { lastEventCursor: true } })).lastEventCursor;
      const only = types?.length ? [...new Set(types)].sort() : null;
      const where = only ? { type: { in: only } } : {};
      return streams.open<WorkspaceEventItem | StreamFailure>({
        watches: [
          // Only a notice past what was sent is news; the read fetches the whole range from `last`.
          on("workspaceEvents", workspaceId, (notice, control) => {
            if (BigInt(notice.cursor) > last) control.wake();
          }),
        ],
        guard,
        pollMs: POLL_MS,
        async read() {
          // The workspace's streams share the read, from the lowest cursor among them.
          const rows = await streams.gather(`events:${workspaceId}:${only?.join(",") ?? "all"}`, last, (asks) =>
            prisma.workspaceEvent.findMany({
              where: { workspaceId, cursor: { gt: asks.reduce((low, at) => (at < low ? at : low)) }, ...where },
              orderBy: { cursor: "asc" },
              take: EVENT_PAGE,
            }),
          );
          const from = last;
          const fresh = rows.filter((row) => row.cursor > from);
          if (fresh.length > 0) last = fresh[fresh.length - 1]!.cursor;
          return { items: fresh.map(toItem), more: rows.length === EVENT_PAGE };
        },
        last: failureItem,
      });
    },

    /**
     * Security notifications for the viewer's account, as they are published (they are not stored).
     * Ends after the event that revoked the subscribing session or key, or with an error when its
     * credential expires.
     */
    async accountEvents(ctx: RequestContext) {
      const viewer = requireUser(ctx.viewer);
      let waiting: AccountEvent[] = [];
      return streams.open<AccountEvent | StreamFailure>({
        watches: [
          on("account", viewer.userId, (event, control) => {
            waiting.push(event);
            if (waiting.length > ACCOUNT_EVENTS_KEPT) waiting.shift();
            control.wake();
          }),
        ],
        guard: await guards.forUser(ctx, null),
        async read() {
          const items = waiting;
          waiting = [];
          return { items };
        },
        // The revocation itself is the last event the client gets.
        last: (end) => (end.reason === "CREDENTIAL_REVOKED" ? (end.cause as AccountEvent) : failureItem(end)),
      });
    },

    /** Ends after the worker is DESTROYED. */
    async workerStatus(ctx: RequestContext, id: string) {
      requireId(id, "worker");
      const found = await prisma.worker.findUnique({ where: { id }, select: { id: true, workspaceId: true } });
      if (!found) throw notFound("worker", id);
      await ctx.access.require(found.workspaceId, "read", { type: "worker", id });
      return statusStream(ctx, { kind: "WORKER", ...found }, async () => {
        const row = await prisma.worker.findUnique({ where: { id } });
        return row && { row, compare: row, last: row.status === "DESTROYED" };
      });
    },

    /** Ends once the task finished (SUCCEEDED, FAILED, CANCELLED); after a retry, subscribe again. */
    async taskStatus(ctx: RequestContext, id: string) {
      requireId(id, "task");
      const found = await prisma.task.findUnique({ where: { id }, select: { id: true, workspaceId: true } });
      if (!found) throw notFound("task", id);
      await ctx.access.require(found.workspaceId, "read", { type: "task", id });
      return statusStream(ctx, { kind: "TASK", ...found }, async () => {
        const row = await prisma.task.findUnique({ where: { id } });
        if (!row) return null;
        // Stages change without touching the task row's status: they are part of "what changed".
        const stages = await prisma.taskStage.findMany({ where: { taskId: id }, select: { index: true, status: true }, orderBy: { index: "asc" } });
        return { row, compare: { row, stages }, last: FINISHED_TASK_STATUSES.includes(row.status) };
      });
    },

    /** Ends after the machine is DECOMMISSIONED. */
    async machineStatus(ctx: RequestContext, id: string) {
      requireId(id, "machine");
      const found = await prisma.machine.findUnique({ where: { id }, select: { id: true, workspaceId: true } });
      if (!found) throw notFound("machine", id);
      await ctx.access.require(found.workspaceId, "read", { type: "machine", id });
      return statusStream(ctx, { kind: "MACHINE", ...found }, async () => {
        const row = await prisma.machine.findUnique({
          where: { id },
          include: {
            _count: {
              select: {
                tasks: { where: { status: { in: HELD_TASK_STATUSES } } },
                workers: { where: { status: { in: [...LIVE_WORKER_STATUSES] } } },
              },
            },
          },
        });
        if (!row) return null;
        const status = collaborators.machineStatusOf(row);
        // Usage figures change with every heartbeat, and `status` already says online or not: only
        // what a client sees as the machine's state makes an item.
        const { cpuPercent: _c, memoryPercent: _m, diskPercent: _d, lastHeartbeatAt: _h, updatedAt: _u, announcedOnline: _a, _count, ...rest } = row;
        return { row, compare: { status, rest }, last: status === "DECOMMISSIONED" };
      });
    },

    /** The deployment and its services; ends when the deployment is deleted. */
    async deploymentStatus(ctx: RequestContext, id: string) {
      requireId(id, "deployment");
      const found = await prisma.deployment.findUnique({ where: { id }, select: { id: true, workspaceId: true } });
      if (!found) throw notFound("deployment", id);
      await ctx.access.require(found.workspaceId, "read", { type: "deployment", id });
      return statusStream(ctx, { kind: "DEPLOYMENT", ...found }, async () => {
        const row = await prisma.deployment.findUnique({ where: { id }, include: { services: { orderBy: [{ name: "asc" }, { id: "asc" }] } } });
        return row && { row, compare: row, last: false };
      });
    },

    /** Stops the announcing of notices (server stopping). */
    stop() {
      live.stop();
    },
  };
  return service;
}

export type EventService = ReturnType<typeof createEventService>;
