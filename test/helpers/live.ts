// Subscriptions in tests: graphql-ws clients, raw WebSockets and SSE streams, each feeding an Inbox
// that a test reads with bounded waits. Everything opened here is registered with `track` so that an
// afterEach can close it and a failing test never leaves a socket (and so the run) hanging.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient, type Client, type FormattedExecutionResult } from "graphql-ws";
import WebSocket from "ws";
import type { TestServer } from "./server.js";

export const GRAPHQL_WS_PROTOCOL = "graphql-transport-ws";

/** Thrown by Inbox.next when nothing arrived in time (as opposed to the stream having ended). */
export class InboxTimeout extends Error {
  override name = "InboxTimeout";
}

/** Items arriving from a stream, read in order with a timeout; remembers how the stream ended. */
export class Inbox<T> {
  private items: T[] = [];
  private wake: (() => void)[] = [];
  /** Set once the stream has ended: `error` is undefined for a normal completion. */
  end?: { error?: unknown };

  constructor(readonly what: string) {}

  push(item: T) {
    this.items.push(item);
    this.notify();
  }

  finish(error?: unknown) {
    this.end ??= { error };
    this.notify();
  }

  /** Items that arrived and have not been read yet. */
  get pending(): readonly T[] {
    return this.items;
  }

  private notify() {
    for (const resolve of this.wake.splice(0)) resolve();
  }

  private async waitFor<R>(ready: () => R | undefined, timeoutMs: number, waitingFor: string): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = ready();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new InboxTimeout(`${this.what}: no ${waitingFor} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next item; fails when none comes within the timeout or the stream ends first. */
  async next(timeoutMs = 5_000): Promise<T> {
    return this.waitFor(
      () => {
        if (this.items.length > 0) return { item: this.items.shift() as T };
        if (this.end) throw new Error(`${this.what} ended (${describeEnd(this.end.error)}) while a message was awaited`);
        return undefined;
      },
      timeoutMs,
      "message",
    ).then((found) => found.item);
  }

  /** Reads items up to and including the first that matches; returns them all (the match last). */
  async until(match: (item: T) => boolean, timeoutMs = 5_000): Promise<T[]> {
    const deadline = Date.now() + timeoutMs;
    const seen: T[] = [];
    for (;;) {
      const item = await this.next(Math.max(1, deadline - Date.now()));
      seen.push(item);
      if (match(item)) return seen;
    }
  }

  /** How the stream ended (waits for it); unread items stay in `pending`. */
  async ended(timeoutMs = 5_000): Promise<{ error?: unknown }> {
    return this.waitFor(() => this.end, timeoutMs, "end of stream");
  }
}

function describeEnd(error: unknown): string {
  if (error === undefined) return "completed";
  if (error && typeof error === "object" && "code" in error) return `closed ${String((error as { code: unknown }).code)}`;
  return JSON.stringify(error) ?? String(error);
}

/**
 * Fires `trigger` until the inbox receives something, and returns that first item. A subscription
 * has no acknowledgement in either protocol, and with Redis the server's SUBSCRIBE takes a round
 * trip, so an event published right after subscribing may precede the listener. Retrying the
 * (idempotent) trigger is the bounded way to know the subscription is live.
 */
export async function firstDelivery<T>(inbox: Inbox<T>, trigger: () => Promise<unknown>, options: { everyMs?: number; withinMs?: number } = {}) {
  const every = options.everyMs ?? 250;
  const deadline = Date.now() + (options.withinMs ?? 10_000);
  for (;;) {
    await trigger();
    try {
      return await inbox.next(Math.max(1, Math.min(every, deadline - Date.now())));
    } catch (error) {
      if (!(error instanceof InboxTimeout) || Date.now() >= deadline) throw error;
    }
  }
}

/** Closers for everything a test opened, run (newest first) by `closeAll` in afterEach. */
export function tracker() {
  const closers: (() => unknown)[] = [];
  return {
    track<T>(value: T, close: (value: T) => unknown): T {
      closers.push(() => close(value));
      return value;
    },
    async closeAll() {
      for (const close of closers.splice(0).reverse()) {
        try {
          await close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}
export type Tracker = ReturnType<typeof tracker>;

/** Close events the client saw, for assertions on codes. */
export interface WsClient extends Client {
  closes: { code: number; reason: string }[];
}

/**
 * A graphql-ws client that never retries (a refused connection shows up as the error, not a loop).
 * `headers` go on the upgrade request; `keepOpenMs` keeps the socket after its last operation ends.
 */
export function wsClient(
  server: TestServer,
  t: Tracker,
  connectionParams?: Record<string, unknown>,
  options: { headers?: Record<string, string>; keepOpenMs?: number } = {},
): WsClient {
  const { headers } = options;
  const closes: WsClient["closes"] = [];
  // `ws` accepts per-connection options as the third constructor argument; graphql-ws passes only two.
  const Impl = headers
    ? class extends WebSocket {
        constructor(url: string | URL, protocols?: string | string[]) {
          super(url, protocols, { headers });
        }
      }
    : WebSocket;
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: Impl,
    connectionParams,
    retryAttempts: 0,
    lazy: true,
    // By default the socket closes as soon as no operation is running; a test may keep it.
    lazyCloseTimeout: options.keepOpenMs ?? 0,
    on: { closed: (event) => void closes.push(event as { code: number; reason: string }) },
  });
  return t.track(Object.assign(client, { closes }), (c) => c.dispose());
}

export type WsResult<R> = FormattedExecutionResult<R, unknown>;

/** Starts an operation on a graphql-ws client; results go to the inbox, completion or error ends it. */
export function wsSubscribe<R, V>(client: Client, t: Tracker, document: TypedDocumentNode<R, V> | string, variables?: V): Inbox<WsResult<R>> {
  const query = typeof document === "string" ? document : print(document);
  const inbox = new Inbox<WsResult<R>>("graphql-ws operation");
  const dispose = client.subscribe<R>(
    { query, variables: variables as Record<string, unknown> | undefined },
    {
      next: (result) => inbox.push(result),
      error: (error) => inbox.finish(error ?? new Error("unknown error")),
      complete: () => inbox.finish(),
    },
  );
  t.track(dispose, (d) => d());
  return inbox;
}

/** A bare WebSocket for protocol-level checks: its JSON messages, its close, or the refused upgrade. */
export interface RawSocket {
  ws: WebSocket;
  messages: Inbox<Record<string, any>>;
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  /** The HTTP status when the server refused the upgrade. */
  refused: Promise<number>;
  send(message: Record<string, unknown>): void;
}

export function rawSocket(server: TestServer, t: Tracker, options: { protocol?: string; headers?: Record<string, string>; path?: string } = {}): RawSocket {
  const url = options.path ? server.wsUrl.replace(/\/graphql$/, options.path) : server.wsUrl;
  const ws = new WebSocket(url, options.protocol ?? GRAPHQL_WS_PROTOCOL, { headers: options.headers });
  t.track(ws, (s) => s.terminate());
  const messages = new Inbox<Record<string, any>>("raw WebSocket");
  ws.on("message", (data) => messages.push(JSON.parse(String(data))));
  ws.on("error", () => {});
  const opened = new Promise<void>((resolve) => ws.once("open", () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => {
      messages.finish({ code });
      resolve({ code, reason: String(reason) });
    }),
  );
  const refused = new Promise<number>((resolve) =>
    ws.once("unexpected-response", (request, response) => {
      resolve(response.statusCode ?? 0);
      request.destroy();
    }),
  );
  return { ws, messages, opened, closed, refused, send: (message) => ws.send(JSON.stringify(message)) };
}

/** Resolves with what happens first, or rejects after the timeout (for promises that may never settle). */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface SseEvent {
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  headers: Headers;
  events: Inbox<SseEvent>;
  close(): void;
}

/** POSTs an operation with `accept: text/event-stream` and parses the events as they arrive. */
export async function sseSubscribe<R, V>(
  server: TestServer,
  t: Tracker,
  document: TypedDocumentNode<R, V> | string,
  options: { token?: string; variables?: V } = {},
): Promise<SseStream> {
  const abort = new AbortController();
  t.track(abort, (a) => a.abort());
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "text/event-stream",
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: JSON.stringify({ query: typeof document === "string" ? document : print(document), variables: options.variables }),
    signal: abort.signal,
  });
  const events = new Inbox<SseEvent>("SSE stream");
  void (async () => {
    if (!res.body) return events.finish();
    const decoder = new TextDecoder();
    let buffer = "";
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let boundary: number;
        while ((boundary = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const event = parseSseBlock(block);
          if (event) events.push(event);
        }
      }
      events.finish();
    } catch (error) {
      events.finish(abort.signal.aborted ? undefined : error);
    }
  })();
  return { status: res.status, headers: res.headers, events, close: () => abort.abort() };
}

function parseSseBlock(block: string): SseEvent | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue; // keep-alive comments
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    if (field === "data") data.push(value);
  }
  if (data.length === 0 && event === "message") return undefined;
  const text = data.join("\n");
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : text;
  } catch {
    // Not JSON: keep the text.
  }
  return { event, data: parsed };
}

/** A raw socket past the handshake: connection_init with these params, connection_ack received. */
export async function acknowledgedSocket(server: TestServer, t: Tracker, payload: Record<string, unknown>): Promise<RawSocket> {
  const socket = rawSocket(server, t);
  await within(socket.opened, 5_000, "WebSocket open");
  socket.send({ type: "connection_init", payload });
  const ack = await socket.messages.next(5_000);
  if (ack.type !== "connection_ack") throw new Error(`Expected connection_ack, got ${JSON.stringify(ack)}`);
  return socket;
}
