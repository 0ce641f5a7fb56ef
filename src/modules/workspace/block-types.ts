// The catalog of graph block types (AiSpinner's `list_block_types`, the flows API's node catalog).
// It lives in code: a block type is behaviour the platform implements, not data a tenant edits.
// `cfgSchema` is a JSON Schema of the block's cfg for editors; saving does not enforce it, because
// legacy clients store extra keys in cfg and must keep working.

export type BlockCategory = "compute" | "trigger" | "integration" | "observe" | "ai";

export interface BlockTypeInfo {
  type: string;
  label: string;
  category: BlockCategory;
  description: string;
  /** True when a block of this type is run by a worker (deployed with its own code and settings). */
  runsWorker: boolean;
  cfgSchema: Record<string, unknown>;
}

const object = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: "object",
  properties,
  ...(required.length ? { required } : {}),
  additionalProperties: true,
});

export const blockTypes: readonly BlockTypeInfo[] = [
  {
    type: "code.worker",
    label: "Code worker",
    category: "compute",
    description:
      "Runs your code: setup(ctx) once, then tick(ctx) every tick interval. Deployed as a worker bound to this block; connected blocks are passed to it.",
    runsWorker: true,
    cfgSchema: object({
      tick_interval: { type: "integer", minimum: 1, default: 10, description: "Seconds between ticks" },
      max_errors: { type: "integer", minimum: 1, default: 5, description: "Consecutive errors before the worker stops" },
      auto_heal: { type: "boolean", default: true, description: "Restart after a failure" },
      runtime: { type: "string", default: "python", description: "Language runtime of the code" },
    }),
  },
  {
    type: "trading.exchange",
    label: "Exchange",
    category: "integration",
    description: "A connection to a crypto exchange account (e.g. Bybit) that connected workers trade through.",
    runsWorker: false,
    cfgSchema: object(
      {
        exchange: { type: "string", enum: ["bybit", "binance", "okx"], description: "Which exchange" },
        api_key_id: { type: ["integer", "string"], description: "The stored exchange API key to use" },
        testnet: { type: "boolean", default: false },
      },
      ["exchange"],
    ),
  },
  {
    type: "monitor",
    label: "Monitor",
    category: "observe",
    description: "Watches values reported by connected blocks and raises an alert when a condition holds.",
    runsWorker: false,
    cfgSchema: object({
      metric: { type: "string", description: "Name of the value to watch" },
      condition: { type: "string", enum: ["above", "below", "changes"], default: "above" },
      threshold: { type: "number" },
      window_seconds: { type: "integer", minimum: 1, default: 60 },
    }),
  },
  {
    type: "notifier",
    label: "Notifier",
    category: "integration",
    description: "Sends messages from connected blocks to a channel (Telegram, e-mail or a webhook).",
    runsWorker: false,
    cfgSchema: object(
      {
        channel: { type: "string", enum: ["telegram", "email", "webhook"] },
        target: { type: "string", description: "Chat id, e-mail address or URL" },
        template: { type: "string", description: "Message template" },
      },
      ["channel", "target"],
    ),
  },
  {
    type: "http.trigger",
    label: "Webhook trigger",
    category: "trigger",
    description: "Starts connected blocks when an HTTP request arrives (a flow run triggered_by webhook).",
    runsWorker: false,
    cfgSchema: object({
      method: { type: "string", enum: ["GET", "POST", "PUT", "PATCH", "DELETE"], default: "POST" },
      path: { type: "string", description: "Path under the workspace's webhook URL" },
      secret: { type: "string", description: "Shared secret the caller must send" },
    }),
  },
  {
    type: "schedule.trigger",
    label: "Schedule trigger",
    category: "trigger",
    description: "Starts connected blocks on a schedule (a flow run triggered_by schedule).",
    runsWorker: false,
    cfgSchema: object(
      {
        cron: { type: "string", description: "Cron expression, e.g. */5 * * * *" },
        timezone: { type: "string", default: "UTC" },
      },
      ["cron"],
    ),
  },
  {
    type: "manual.trigger",
    label: "Manual trigger",
    category: "trigger",
    description: "Starts connected blocks when someone presses run (a flow run triggered_by manual).",
    runsWorker: false,
    cfgSchema: object({ input: { type: "object", description: "Default input of a run" } }),
  },
  {
    type: "http.request",
    label: "HTTP request",
    category: "integration",
    description: "Calls an HTTP endpoint and passes the response on.",
    runsWorker: false,
    cfgSchema: object(
      {
        url: { type: "string", format: "uri" },
        method: { type: "string", enum: ["GET", "POST", "PUT", "PATCH", "DELETE"], default: "GET" },
        headers: { type: "object", additionalProperties: { type: "string" } },
        body: {},
        timeout_seconds: { type: "integer", minimum: 1, default: 30 },
      },
      ["url"],
    ),
  },
  {
    type: "ai.agent",
    label: "AI agent",
    category: "ai",
    description: "An AI agent that works on its input with instructions and tools, and keeps a memory.",
    runsWorker: false,
    cfgSchema: object({
      model: { type: "string" },
      instructions: { type: "string" },
      tools: { type: "array", items: { type: "string" } },
      memory: { type: "boolean", default: true },
    }),
  },
  {
    type: "voice.dialer",
    label: "Dialer",
    category: "integration",
    description: "Places phone calls from a list with a script, and keeps the call history.",
    runsWorker: false,
    cfgSchema: object({
      provider: { type: "string" },
      from_number: { type: "string" },
      script: { type: "string" },
      max_concurrent_calls: { type: "integer", minimum: 1, default: 1 },
    }),
  },
];

const byType = new Map(blockTypes.map((b) => [b.type, b]));

export const blockTypeOf = (type: string): BlockTypeInfo | undefined => byType.get(type);

export function findBlockTypes(filter: { search?: string | null; category?: string | null }): BlockTypeInfo[] {
  const search = filter.search?.trim().toLowerCase();
  return blockTypes.filter(
    (b) =>
      (!filter.category || b.category === filter.category) &&
      (!search || [b.type, b.label, b.description].some((text) => text.toLowerCase().includes(search))),
  );
}
