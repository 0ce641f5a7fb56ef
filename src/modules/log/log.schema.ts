// Logs of workers, tasks and services: reading pages (logLines), appending batches (appendLogs),
// following live (the `logs` subscription, over graphql-ws and SSE).
import { builder } from "../../schema/builder.js";
import { MAX_BATCH_BYTES, MAX_LINE_BYTES, MAX_LINES_PER_BATCH, MAX_STEP_LENGTH, type AppendResult } from "./ingest.js";
import { DEFAULT_LOG_LIMIT, LOG_LEVELS, LOG_SOURCE_TYPES, MAX_LOG_LIMIT, type LogLineView, type LogPage, type SourcedLogLine } from "./log.service.js";
import type { LogStreamItem } from "./stream.js";

export const LogLevelEnum = builder.enumType("LogLevel", { values: LOG_LEVELS });
export const LogSourceTypeEnum = builder.enumType("LogSourceType", { values: LOG_SOURCE_TYPES });

const LogLineType = builder.objectRef<LogLineView>("LogLine").implement({
  fields: (t) => ({
    cursor: t.exposeString("cursor", { description: "Grows by one per line of the source; never reused" }),
    level: t.expose("level", { type: LogLevelEnum }),
    message: t.exposeString("message"),
    step: t.string({ nullable: true, resolve: (line) => line.step ?? null, description: "The step (stage) of a task or flow run, when the writer named one" }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

const WorkspaceLogLineType = builder.objectRef<SourcedLogLine>("WorkspaceLogLine").implement({
  description: "A log line with the worker, task or service that wrote it",
  fields: (t) => ({
    sourceType: t.expose("sourceType", { type: LogSourceTypeEnum }),
    sourceId: t.exposeID("sourceId"),
    cursor: t.exposeString("cursor", { description: "Grows by one per line of the source; never reused" }),
    level: t.expose("level", { type: LogLevelEnum }),
    message: t.exposeString("message"),
    step: t.string({ nullable: true, resolve: (line) => line.step ?? null, description: "The step (stage) of a task or flow run, when the writer named one" }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  recentLogLines: t.field({
    type: [WorkspaceLogLineType],
    description: "The newest log lines of the workspace's workers, tasks and services, newest first (by when each was written).",
    args: {
      sourceType: t.arg({ type: LogSourceTypeEnum, description: "Only lines of this kind of source" }),
      onlyFlowRuns: t.arg.boolean({ description: "Only lines of flow runs (tasks of a flow)" }),
      limit: t.arg.int({ description: `1 to ${MAX_LOG_LIMIT} (default ${DEFAULT_LOG_LIMIT})` }),
    },
    resolve: (workspace, args, ctx) => ctx.services.logs.recent(ctx, workspace.id, args),
  }),
}));

const LogGapType = builder.objectRef<{ from: string; to: string }>("LogGap").implement({
  description: "Cursors retention removed before they could be read",
  fields: (t) => ({
    from: t.exposeString("from"),
    to: t.exposeString("to"),
  }),
});

const LogPageType = builder.objectRef<LogPage>("LogPage").implement({
  fields: (t) => ({
    lines: t.field({ type: [LogLineType], resolve: (p) => p.lines, description: "Oldest first" }),
    nextCursor: t.exposeString("nextCursor", { description: "Pass as `after` to read on (also to follow new lines later)" }),
    hasMore: t.exposeBoolean("hasMore", { description: "More stored lines beyond this page (older ones, with tail)" }),
    gap: t.field({
      type: LogGapType,
      nullable: true,
      resolve: (p) => p.gap,
      description: "Set when `after` was before what retention kept: the cursors that are gone",
    }),
    finished: t.exposeBoolean("finished", { description: "The source will write no more lines" }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
  }),
});

const LogSourceInput = builder.inputType("LogSourceInput", {
  fields: (t) => ({
    type: t.field({ type: LogSourceTypeEnum, required: true }),
    id: t.id({ required: true, description: "The worker, task or service" }),
  }),
});

const LogLinesInput = builder.inputType("LogLinesInput", {
  fields: (t) => ({
    source: t.field({ type: LogSourceInput, required: true }),
    after: t.string({ description: "A cursor: lines after it (default: from the start)" }),
    level: t.field({ type: LogLevelEnum, description: "Minimum level: DEBUG < INFO < WARN < ERROR" }),
    limit: t.int({ description: `1 to ${MAX_LOG_LIMIT} (default ${DEFAULT_LOG_LIMIT})` }),
    tail: t.boolean({ description: "The newest `limit` lines instead of the oldest; not with `after`" }),
  }),
});

builder.queryFields((t) => ({
  logLines: t.field({
    type: LogPageType,
    description: "Stored log lines of a worker, task or service, for anyone who can read that object.",
    authScopes: { read: true },
    args: { input: t.arg({ type: LogLinesInput, required: true }) },
    resolve: (_root, args, ctx) => ctx.services.logs.read(ctx, args.input),
  }),
}));

const LogLineInput = builder.inputType("LogLineInput", {
  fields: (t) => ({
    level: t.field({ type: LogLevelEnum, required: true }),
    message: t.string({ required: true, description: `At most ${MAX_LINE_BYTES / 1024} KiB in UTF-8` }),
    step: t.string({ description: `The step (stage) of a task or flow run the line belongs to, at most ${MAX_STEP_LENGTH} characters` }),
    at: t.field({ type: "DateTime", description: "When it was written (default: when it was received)" }),
  }),
});

const AppendLogsInput = builder.inputType("AppendLogsInput", {
  fields: (t) => ({
    source: t.field({ type: LogSourceInput, required: true }),
    sequence: t.id({
      required: true,
      description:
        "The client's number (or string) for this batch, unique per source: a retry with the same sequence is stored once and answers the same cursors",
    }),
    lines: t.field({
      type: [LogLineInput],
      required: true,
      description: `1 to ${MAX_LINES_PER_BATCH} lines, at most ${MAX_BATCH_BYTES / 1024 / 1024} MiB of messages in all; they get the source's next cursors in this order`,
    }),
  }),
});

const AppendLogsPayload = builder.objectRef<AppendResult>("AppendLogsPayload").implement({
  fields: (t) => ({
    firstCursor: t.exposeString("firstCursor"),
    lastCursor: t.exposeString("lastCursor"),
    count: t.exposeInt("count"),
    replayed: t.exposeBoolean("replayed", { description: "This batch had been stored before (a retry): nothing was added" }),
  }),
});

builder.mutationFields((t) => ({
  appendLogs: t.field({
    type: AppendLogsPayload,
    description:
      "Appends a batch of log lines to a worker, task or service: by the machine it is assigned to, or a user with write access to its workspace. Refused (CONFLICT) once the source has finished.",
    authScopes: { $any: { write: true, machine: true } },
    args: { input: t.arg({ type: AppendLogsInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.logs.append(ctx, input),
  }),
}));

const LogStreamEndEnum = builder.enumType("LogStreamEnd", {
  description: "Why a `logs` stream ended (it completes right after the item that says so)",
  values: {
    SOURCE_FINISHED: { description: "The task finished or the worker or service is gone: no line will follow" },
    ACCESS_REVOKED: { description: "The viewer can no longer read the workspace" },
    CREDENTIAL_EXPIRED: { description: "The token or key that opened the stream expired; reconnect with a fresh one and the last cursor" },
    CREDENTIAL_REVOKED: { description: "The session or API key that opened the stream was revoked (signed out)" },
  } as const,
});

const LogStreamItemType = builder.objectRef<LogStreamItem>("LogStreamItem").implement({
  description: "A batch of a `logs` stream",
  fields: (t) => ({
    lines: t.field({ type: [LogLineType], resolve: (i) => i.lines, description: "New lines, oldest first (may be empty in a gap or final item)" }),
    cursor: t.exposeString("cursor", { description: "Everything up to this cursor was delivered: pass it as `after` to resume" }),
    gap: t.field({
      type: LogGapType,
      nullable: true,
      resolve: (i) => i.gap,
      description: "Cursors retention removed before they could be delivered",
    }),
    finished: t.exposeBoolean("finished", { description: "The source finished: this is the last item" }),
    end: t.field({ type: LogStreamEndEnum, nullable: true, resolve: (i) => i.end, description: "Set on the last item: why the stream ends" }),
  }),
});

builder.subscriptionFields((t) => ({
  logs: t.field({
    type: LogStreamItemType,
    description:
      "The source's stored lines after `after`, then new ones live, with no gap and no duplicate. Resume after a disconnect with the last item's cursor. Ends with an item saying why (the source finished, access was revoked, the credential expired).",
    authScopes: { read: true },
    args: {
      source: t.arg({ type: LogSourceInput, required: true }),
      after: t.arg.string({ description: "A cursor: lines after it (default: from the start)" }),
      level: t.arg({ type: LogLevelEnum, description: "Minimum level: DEBUG < INFO < WARN < ERROR" }),
    },
    subscribe: (_root, args, ctx) => ctx.services.logs.stream(ctx, args),
    resolve: (item) => item,
  }),
}));
