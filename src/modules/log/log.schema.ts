// Stored log lines: read here; ingestion and live streaming come with the live-logs issue.
import { builder } from "../../schema/builder.js";
import { DEFAULT_LOG_LIMIT, LOG_LEVELS, LOG_SOURCE_TYPES, MAX_LOG_LIMIT, type LogLineView, type LogPage } from "./log.service.js";

export const LogLevelEnum = builder.enumType("LogLevel", { values: LOG_LEVELS });
export const LogSourceTypeEnum = builder.enumType("LogSourceType", { values: LOG_SOURCE_TYPES });

const LogLineType = builder.objectRef<LogLineView>("LogLine").implement({
  fields: (t) => ({
    cursor: t.exposeString("cursor", { description: "Grows by one per line of the source; never reused" }),
    level: t.expose("level", { type: LogLevelEnum }),
    message: t.exposeString("message"),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

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
