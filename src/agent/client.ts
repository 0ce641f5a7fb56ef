// The agent's line to the server: typed GraphQL operations over HTTP (src/agent/operations, typed by
// codegen) and the machine's push channel over graphql-ws. Failures come in two kinds the agent
// treats differently: the server could not be reached or answered 5xx (Unreachable: retry with
// backoff, keep the work going), and the server refused the operation (Refused, with its error code:
// the request itself must change).
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

/** The server could not be reached, or failed (5xx): the same request may work later. */
export class Unreachable extends Error {
  override name = "Unreachable";
}

/** The server answered and refused: `code` is its error code (NOT_AUTHENTICATED, CONFLICT, NOT_FOUND ...). */
export class Refused extends Error {
  override name = "Refused";
  /** Which credential the refused request carried (AgentClient.credentialGeneration then). */
  generation = 0;

  constructor(
    message: string,
    readonly code: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface GraphQLErrorJson {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}

export interface ClientOptions {
  /** The server's base URL (http://host:port). */
  server: string;
  /** The machine credential (spm_...), when there is one yet. */
  credential?: string;
  /** How long one request may take. */
  timeoutMs?: number;
}

export class AgentClient {
  readonly graphqlUrl: string;
  private credential?: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    this.graphqlUrl = new URL("/graphql", options.server).toString();
    this.credential = options.credential;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** Counts credential changes: a refusal of an older credential than the current one is already dealt with. */
  credentialGeneration = 0;

  setCredential(credential: string) {
    this.credential = credential;
    this.credentialGeneration++;
  }

  /** Runs one operation; its data, or Refused / Unreachable. */
  /**
   * Set by a running agent: a refused credential is reported here and the request fails as
   * Unreachable, so that whoever made it tries again (with a newer credential, once the agent found
   * one) instead of giving up on its report or log batch.
   */
  onCredentialRefused?: (error: Refused) => void;

  async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const generation = this.credentialGeneration;
    try {
      return await this.send(document, variables);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      error.generation = generation;
      if (error.code === "NOT_AUTHENTICATED" && this.onCredentialRefused) {
        this.onCredentialRefused(error);
        throw new Unreachable(`The server refused the machine credential (${error.message}); retrying once there is a newer one`);
      }
      throw error;
    }
  }

  private async send<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    let response: Response;
    try {
      response = await fetch(this.graphqlUrl, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/graphql-response+json, application/json",
          ...(this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
        },
        body: JSON.stringify({ query: print(document), variables: variables ?? {} }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new Unreachable(`Cannot reach ${this.graphqlUrl}: ${describe(error)}`);
    }
    if (response.status >= 500 || response.status === 429) {
      throw new Unreachable(`${this.graphqlUrl} answered HTTP ${response.status}`);
    }
    let body: { data?: R | null; errors?: GraphQLErrorJson[] };
    try {
      body = (await response.json()) as typeof body;
    } catch (error) {
      throw new Unreachable(`${this.graphqlUrl} answered HTTP ${response.status} without JSON: ${describe(error)}`);
    }
    const [first] = body.errors ?? [];
    if (first) {
      const code = first.extensions?.code ?? "INTERNAL";
      if (code === "INTERNAL" || code === "INTERNAL_SERVER_ERROR" || code === "UNAVAILABLE") throw new Unreachable(`The server failed: ${first.message}`);
      throw new Refused(first.message, code, first.extensions);
    }
    if (!body.data) throw new Unreachable(`${this.graphqlUrl} answered HTTP ${response.status} without data`);
    return body.data;
  }

  /**
   * A subscription over graphql-ws with the current credential. `onItem` gets each result's data;
   * `onEnd` is called once, with the error that ended it (a refusal, a lost connection) or nothing
   * when the server completed it. Returns a function that ends it.
   */
  subscribe<R>(document: TypedDocumentNode<R, Record<string, never>>, handlers: { onItem(data: R): void; onEnd(error?: Error): void }): () => void {
    const url = this.graphqlUrl.replace(/^http/, "ws");
    const generation = this.credentialGeneration;
    let ended = false;
    const end = (error?: Error) => {
      if (ended) return;
      ended = true;
      if (error instanceof Refused) error.generation = generation;
      handlers.onEnd(error);
      void client.dispose();
    };
    const client: Client = createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: this.credential ? { authorization: `Bearer ${this.credential}` } : {},
      // The agent decides when to resubscribe (with backoff, polling meanwhile): no hidden retries.
      retryAttempts: 0,
      // Connects for the subscription below; a refused connection reaches its sink as an error.
      lazy: true,
      lazyCloseTimeout: 0,
      keepAlive: 10_000,
      on: {
        closed: (event) => {
          const { code, reason } = event as { code?: number; reason?: string };
          end(new Unreachable(`The assignment stream closed (${code ?? "?"}${reason ? `: ${reason}` : ""})`));
        },
        error: (error) => end(new Unreachable(`The assignment stream failed: ${describe(error)}`)),
      },
    });
    client.subscribe<R>(
      { query: print(document) },
      {
        next: (result) => {
          const [first] = (result.errors ?? []) as GraphQLErrorJson[];
          if (first) return end(new Refused(first.message, first.extensions?.code ?? "INTERNAL", first.extensions));
          if (result.data) handlers.onItem(result.data as R);
        },
        error: (error) => {
          const list = Array.isArray(error) ? (error as GraphQLErrorJson[]) : null;
          end(list?.[0] ? new Refused(list[0].message, list[0].extensions?.code ?? "INTERNAL") : new Unreachable(describe(error)));
        },
        complete: () => end(),
      },
    );
    return () => end();
  }
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  if (error && typeof error === "object" && "type" in error) return `${String((error as { type: unknown }).type)} event`;
  return String(error);
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to `maxMs`. */
export function backoff(attempt: number, maxMs = 30_000): number {
  const base = Math.min(maxMs, 500 * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + Math.random() * (base / 2));
}
