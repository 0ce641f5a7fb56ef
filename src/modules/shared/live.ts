// Live notices: what changed is written in the mutation's transaction (workspace events with their
// cursor, finished log sources) and announced on pub/sub only after that transaction commits, so a
// subscriber woken by a notice always finds the change in the database. Notices carry ids; streams
// re-read what they show, so a lost or coalesced notice costs a re-read, never a wrong answer.
//
// Every mutation runs in the unit of work (unit-of-work.ts), which hands it a `WorkTx`: the
// transaction carrying the `LiveBatch` its notes go to. Helpers deep inside (a worker's state
// machine, say) note notices and events against that `tx` without the batch being passed around,
// and a plain transaction cannot be passed to them (it is not a `WorkTx`).
//
// Events noted during such a transaction are written at its end: taking the next cursors locks the
// workspace row until commit, and taking that lock last in every transaction that also locks other
// rows (tasks, workers, machines) keeps them from deadlocking one another.
//
// The subscriber side is the engine in infra/streams.ts; this file gives it the one guard every
// stream is checked by (createStreamGuards, at the end).
import { requireUser, type MachineViewer, type UserViewer } from "../../auth/viewer.js";
import type { Prisma, PrismaClient, WorkspaceRole } from "../../generated/prisma/client.js";
import type { AccessNotice, AccountEvent, AccountEventType, PubSubService, StatusNotice, StatusSubjectType } from "../../infra/pubsub.js";
import type { Database } from "../../infra/db.js";
import { on, type LiveStreams, type StreamEnd, type StreamGuard, type Watch } from "../../infra/streams.js";
import type { Logger } from "../../infra/logger.js";
import { forbidden, notAuthenticated } from "../../schema/errors.js";
import { announceLogSourcesFinished, finishLogSources, type LogSourceRef } from "../log/log-sources.js";
import type { RequestContext } from "./request.js";

type Tx = Prisma.TransactionClient;

/** Where a `WorkTx` keeps its batch. */
export const LIVE_BATCH = Symbol("spindle.liveBatch");

/** A transaction opened by the unit of work (unit-of-work.ts): it carries the batch of what to announce after commit. */
export type WorkTx = Tx & { readonly [LIVE_BATCH]: LiveBatch };

/** The api-v1 event types; the workspace stream carries these (and may carry more later). */
export const WORKSPACE_EVENT_TYPES = [
  "task.created",
  "task.updated",
  "task.completed",
  "task.failed",
  "worker.online",
  "worker.offline",
  "agent.status",
  "message.new",
  "notification",
  "system.alert",
] as const;
export type WorkspaceEventType = (typeof WORKSPACE_EVENT_TYPES)[number];

/** Types an administrator publishes by hand (the others are written by the domain itself). */
export const PUBLISHABLE_EVENT_TYPES = ["message.new", "notification", "system.alert"] as const satisfies readonly WorkspaceEventType[];

export interface EventInput {
  workspaceId: string;
  type: WorkspaceEventType;
  subjectType?: string | null;
  subjectId?: string | null;
  data?: Prisma.InputJsonValue | null;
}

/** Tick reports are frequent: at most one status notice per worker per this many ms. */
export const TICK_NOTICE_INTERVAL_MS = 1_000;

/** What one transaction has to announce once it commits. */
export class LiveBatch {
  readonly status = new Map<string, StatusNotice>();
  readonly ticks = new Map<string, StatusNotice>();
  /** Newest cursor stored per workspace: one notice per workspace is enough (readers read the range). */
  readonly events = new Map<string, bigint>();
  readonly finishedSources = new Set<string>();
  readonly access = new Map<string, AccessNotice>();
  /** One's own account: a session ended, the profile, password or two-factor changed, an API key made or revoked. */
  readonly account: AccountEvent[] = [];
  /** Events noted but not yet written (see `flush`). */
  readonly pendingEvents: EventInput[] = [];

  /** Writes the noted events (with their cursors); the last thing a unit of work does before commit. */
  async flush(tx: WorkTx): Promise<void> {
    const events = this.pendingEvents.splice(0);
    if (events.length > 0) await recordEvents(tx, events);
  }

  get empty() {
    return this.status.size + this.ticks.size + this.events.size + this.finishedSources.size + this.access.size + this.account.length === 0;
  }
}

function statusNotice(subjectType: StatusSubjectType, subjectId: string, workspaceId: string): StatusNotice {
  return { subjectType, subjectId, workspaceId, at: new Date().toISOString() };
}

/** Something about the subject changed: its status stream re-reads it after commit. */
export function noteStatus(tx: WorkTx, subjectType: StatusSubjectType, subjectId: string | null | undefined, workspaceId: string): void {
  if (!subjectId) return;
  tx[LIVE_BATCH].status.set(subjectId, statusNotice(subjectType, subjectId, workspaceId));
}

/** A worker's counters moved: announced like a status change, but at most once a second per worker. */
export function noteTicks(tx: WorkTx, workerId: string, workspaceId: string): void {
  tx[LIVE_BATCH].ticks.set(workerId, statusNotice("WORKER", workerId, workspaceId));
}

/** The user's access to the workspace changed: their streams re-check membership after commit. */
export function noteAccess(tx: WorkTx, workspaceId: string, userId: string): void {
  tx[LIVE_BATCH].access.set(`${workspaceId}:${userId}`, { workspaceId, userId });
}

/** Something about the user's own account changed: their `accountEvents` stream hears of it after commit. */
export function noteAccount(tx: WorkTx, type: AccountEventType, userId: string, subjectId: string): void {
  tx[LIVE_BATCH].account.push({ type, userId, subjectId, occurredAt: new Date().toISOString() });
}

/** Marks log sources finished in this transaction; their `logs` streams end after commit. */
export async function noteLogSourcesFinished(tx: WorkTx, sources: LogSourceRef[]): Promise<void> {
  if (sources.length === 0) return;
  await finishLogSources(tx, sources);
  for (const source of sources) tx[LIVE_BATCH].finishedSources.add(source.sourceId);
}

/** Workspace events of this transaction: written when the unit of work ends (see the file comment). */
export function noteEvents(tx: WorkTx, events: EventInput[]): void {
  tx[LIVE_BATCH].pendingEvents.push(...events);
}

export const noteEvent = (tx: WorkTx, event: EventInput) => noteEvents(tx, [event]);

/**
 * Stores workspace events with the next cursors of their workspaces, now. The counter row stays locked
 * until the transaction ends, so cursors are handed out in commit order: a reader never sees
 * cursor n+1 before n. Record events late in a transaction (after the rows it changes) so that the
 * workspace row is the last lock taken.
 */
export async function recordEvents(tx: WorkTx, events: EventInput[]): Promise<{ workspaceId: string; cursor: bigint }[]> {
  const byWorkspace = new Map<string, EventInput[]>();
  for (const event of events) {
    const list = byWorkspace.get(event.workspaceId) ?? [];
    list.push(event);
    byWorkspace.set(event.workspaceId, list);
  }
  const stored: { workspaceId: string; cursor: bigint }[] = [];
  const at = new Date();
  for (const [workspaceId, list] of byWorkspace) {
    const [row] = await tx.$queryRaw<{ lastEventCursor: bigint }[]>`
      UPDATE "Workspace" SET "lastEventCursor" = "lastEventCursor" + ${list.length}
       WHERE "id" = ${workspaceId}::uuid
      RETURNING "lastEventCursor"`;
    if (!row) continue; // The workspace is gone (deleted in this transaction): nobody is left to tell.
    const last = BigInt(row.lastEventCursor);
    const first = last - BigInt(list.length) + 1n;
    await tx.workspaceEvent.createMany({
      data: list.map((event, i) => ({
        workspaceId,
        cursor: first + BigInt(i),
        type: event.type,
        subjectType: event.subjectType ?? null,
        subjectId: event.subjectId ?? null,
        data: event.data ?? undefined,
        at,
      })),
    });
    const batch = tx[LIVE_BATCH];
    const known = batch.events.get(workspaceId);
    if (known === undefined || known < last) batch.events.set(workspaceId, last);
    list.forEach((_, i) => stored.push({ workspaceId, cursor: first + BigInt(i) }));
  }
  return stored;
}

export async function recordEvent(tx: WorkTx, event: EventInput): Promise<{ workspaceId: string; cursor: bigint }> {
  const [stored] = await recordEvents(tx, [event]);
  return stored ?? { workspaceId: event.workspaceId, cursor: 0n };
}

/** Announces committed batches; one per server, built by the composition root (modules/domain.ts). */
export interface Live {
  /** Publishes what a committed unit of work noted (unit-of-work.ts calls it after commit). */
  announce(batch: LiveBatch): void;
  /** No more notices (server stopping): pending tick notices are dropped. */
  stop(): void;
}

export function createLive(pubsubService: PubSubService, log?: Logger): Live {
  const { pubsub } = pubsubService;
  let stopped = false;
  // Per worker: when its last tick notice went out, and the trailing one waiting, if any.
  const tickState = new Map<string, { last: number; timer?: NodeJS.Timeout; notice?: StatusNotice }>();

  /**
   * Whether a notice can go out now. While Redis is away a publish would only queue in the client
   * (to be rejected after its retry budget): it is dropped instead, and every stream re-reads the
   * database when the subscription connection is back (PubSubService.onReconnect).
   */
  function canPublish() {
    if (stopped) return false;
    const status = pubsubService.redis?.status;
    return status === undefined || status === "ready" || status === "connect" || status === "connecting";
  }

  function publishStatus(notice: StatusNotice) {
    if (canPublish()) pubsub.publish("status", notice.subjectId, notice);
  }

  function tick(notice: StatusNotice) {
    const now = Date.now();
    const state = tickState.get(notice.subjectId);
    if (!state || now - state.last >= TICK_NOTICE_INTERVAL_MS) {
      if (state?.timer) clearTimeout(state.timer);
      tickState.set(notice.subjectId, { last: now });
      publishStatus(notice);
      if (tickState.size > 10_000) {
        for (const [id, s] of tickState) if (!s.timer && now - s.last >= TICK_NOTICE_INTERVAL_MS) tickState.delete(id);
      }
      return;
    }
    state.notice = notice;
    state.timer ??= setTimeout(() => {
      tickState.set(notice.subjectId, { last: Date.now() });
      if (state.notice) publishStatus(state.notice);
    }, state.last + TICK_NOTICE_INTERVAL_MS - now).unref();
  }

  function announce(batch: LiveBatch) {
    if (batch.empty || !canPublish()) return;
    try {
      for (const notice of batch.status.values()) publishStatus(notice);
      for (const notice of batch.ticks.values()) {
        // A status notice for the same worker already says everything.
        if (!batch.status.has(notice.subjectId)) tick(notice);
      }
      for (const [workspaceId, cursor] of batch.events) pubsub.publish("workspaceEvents", workspaceId, { workspaceId, cursor: cursor.toString() });
      if (batch.finishedSources.size > 0) announceLogSourcesFinished(pubsubService, [...batch.finishedSources]);
      for (const notice of batch.access.values()) pubsub.publish("access", notice.workspaceId, notice);
      for (const event of batch.account) pubsub.publish("account", event.userId, event);
    } catch (error) {
      // The change is committed either way; streams catch up on their next read.
      log?.warn({ err: error }, "announcing live notices failed");
    }
  }

  return {
    announce,
    stop() {
      stopped = true;
      for (const state of tickState.values()) if (state.timer) clearTimeout(state.timer);
      tickState.clear();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Subscriber side: the one guard of every live stream (the engine, infra/streams.ts, applies it).

/** Ends a stream with an error: the subscription's resolver throws it as the last item. */
export class StreamFailure {
  constructor(readonly error: Error) {}
}

/** In a subscription's resolver: the last item of a stream that ended because of an error is sent as that error, then the stream completes. */
export function unwrap<T>(item: T | StreamFailure): T {
  if (item instanceof StreamFailure) throw item.error;
  return item;
}

/** The last item of a stream whose clients are told why it ended by an error (events, status, account events). */
export const failureItem = (end: StreamEnd): StreamFailure | undefined => (end.error ? new StreamFailure(end.error) : undefined);

export interface StreamGuards {
  /**
   * The guard of a user's (session or API key) stream on a workspace, or with `workspaceId` null
   * on the user's own account. A subscription's context lives as long as the stream, so the role
   * it cached when subscribing would go on deciding what every later item shows (`env` to a member
   * demoted to viewer). Instead the role is read again before every read: a removed member gets no
   * further item, a demoted one gets the next item as the new role may see it. An `access` notice
   * for the user asks again at once; without one (a lost notice) the next read still does.
   * Revoking the session or key ends the stream, and so does its expiry.
   */
  forUser(ctx: Pick<RequestContext, "viewer" | "access">, workspaceId: string | null): Promise<StreamGuard>;
  /**
   * The guard of a machine's own stream: it ends once the credential it was opened with stops
   * working (rotated, recovered, decommissioned, rejected). A status notice for the machine asks
   * again at once; without one, every read still does.
   */
  forMachine(viewer: MachineViewer): StreamGuard;
}

/**
 * The one guard of every live stream, built once per server. Memberships are read fresh for every
 * check, but the checks of all streams that need one are one statement: a thousand viewers of one
 * log cost one membership read per new batch, not a thousand.
 */
export function createStreamGuards(deps: { prisma: PrismaClient; db: Pick<Database, "withConnection">; streams: LiveStreams }): StreamGuards {
  const { prisma, db, streams } = deps;
  /** Memberships as they are now, for every stream that checks in one read (see `gather`). */
  const roleOf = (workspaceId: string, userId: string) =>
    streams
      .gather("memberships", `${workspaceId}:${userId}`, async (keys) => {
        const pairs = [...new Set(keys)].map((key) => key.split(":") as [string, string]);
        const rows = await db.withConnection((sql) =>
          sql.query<{ key: string; role: WorkspaceRole }>(
            `SELECT m."workspaceId"::text || ':' || m."userId"::text AS "key", m."role"::text AS "role"
               FROM "WorkspaceMember" m JOIN unnest($1::uuid[], $2::uuid[]) AS k("workspaceId", "userId")
                 ON m."workspaceId" = k."workspaceId" AND m."userId" = k."userId"`,
            [pairs.map(([workspaceId]) => workspaceId), pairs.map(([, userId]) => userId)],
          ),
        );
        return new Map(rows.map((row) => [row.key, row.role]));
      })
      .then((roles) => roles.get(`${workspaceId}:${userId}`) ?? null);

  /** Which of these machine credentials still work, for every stream that checks in one read. */
  const machineCredentialWorks = (machineId: string, credentialHash: string) =>
    streams
      .gather("machineCredentials", `${machineId}:${credentialHash}`, async (keys) => {
        const pairs = [...new Set(keys)].map((key) => key.split(":") as [string, string]);
        const rows = await db.withConnection((sql) =>
          sql.query<{ key: string }>(
            `SELECT m."id"::text || ':' || m."credentialHash" AS "key"
               FROM "Machine" m JOIN unnest($1::uuid[], $2::text[]) AS k("id", "credentialHash")
                 ON m."id" = k."id" AND m."credentialHash" = k."credentialHash"
              WHERE m."decommissionedAt" IS NULL AND m."approval" <> 'REJECTED'`,
            [pairs.map(([id]) => id), pairs.map(([, hash]) => hash)],
          ),
        );
        return new Set(rows.map((row) => row.key));
      })
      .then((working) => working.has(`${machineId}:${credentialHash}`));

  return {
    forMachine(viewer) {
      const ended: StreamEnd = {
        reason: "CREDENTIAL_REVOKED",
        error: notAuthenticated("The machine credential of this stream no longer works (rotated, decommissioned or rejected); resubscribe with the current one"),
      };
      return {
        watches: [on("status", viewer.machineId, (_notice, control) => control.recheck())],
        check: async () => ((await machineCredentialWorks(viewer.machineId, viewer.credentialHash)) ? null : ended),
      };
    },

    async forUser(ctx, workspaceId) {
      const viewer = requireUser(ctx.viewer);
      const what = viewer.kind === "session" ? "session" : "API key";
      const watches: Watch[] = [
        on("account", viewer.userId, (event, control) => {
          const revoked =
            (event.type === "SESSION_REVOKED" && viewer.kind === "session" && event.subjectId === viewer.sessionId) ||
            (event.type === "API_KEY_REVOKED" && viewer.kind === "apiKey" && event.subjectId === viewer.apiKeyId);
          if (revoked) {
            control.end({ reason: "CREDENTIAL_REVOKED", error: notAuthenticated(`The ${what} of this stream was revoked; sign in again and resubscribe`), cause: event });
          }
        }),
      ];
      if (workspaceId) {
        watches.push(
          on("access", workspaceId, (notice, control) => {
            if (notice.userId === viewer.userId) control.recheck();
          }),
        );
      }
      const removed: StreamEnd | null = workspaceId
        ? { reason: "ACCESS_REVOKED", error: forbidden(`You are no longer a member of workspace ${workspaceId}; this stream has ended`) }
        : null;
      // The role the stream's context holds (cached when the subscription was authorized).
      let known = workspaceId ? await ctx.access.roleIn(workspaceId) : null;
      return {
        watches,
        expires: await credentialExpiry(prisma, viewer),
        async check() {
          if (!workspaceId) return null;
          // A key bound to one workspace sees no other (checked when subscribing; kept so the rule is whole here).
          if (viewer.kind === "apiKey" && viewer.workspaceId && viewer.workspaceId !== workspaceId) return removed;
          const role = await roleOf(workspaceId, viewer.userId);
          if (!role) return removed;
          // Changed: the context's cache, which the items' resolvers read, is refreshed too.
          if (role !== known) known = await ctx.access.refresh(workspaceId);
          return known ? null : removed;
        },
      };
    },
  };
}

/**
 * When the stream's credential stops being valid: an API key's expiry; for a session, the access
 * token's expiry when the viewer carries it (`expiresAt`, a bearer token), else the session's own.
 */
async function credentialExpiry(prisma: PrismaClient, viewer: UserViewer): Promise<StreamGuard["expires"]> {
  let at: Date | null | undefined;
  if (viewer.kind === "apiKey") {
    at = (await prisma.apiKey.findUnique({ where: { id: viewer.apiKeyId }, select: { expiresAt: true } }))?.expiresAt;
  } else {
    at = viewer.expiresAt;
    at ??= (await prisma.session.findUnique({ where: { id: viewer.sessionId }, select: { expiresAt: true } }))?.expiresAt;
  }
  if (!at) return undefined;
  const what = viewer.kind === "apiKey" ? "API key" : "access token";
  const error = notAuthenticated(`The ${what} of this stream has expired; ${viewer.kind === "apiKey" ? "use a valid key" : "refresh it"} and resubscribe`);
  return { at, end: { reason: "CREDENTIAL_EXPIRED", error } };
}
