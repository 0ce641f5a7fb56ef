// Starts a real Spindle server for a test file: the embedded default (in-memory PGlite, in-process
// pub/sub), or, when DATABASE_URL and REDIS_URL are set, a fresh PostgreSQL database and real Redis.
import { randomBytes } from "node:crypto";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import pg from "pg";
import { buildApp, type App } from "../../src/app.js";
import { loadSigningKey } from "../../src/auth/tokens.js";
import { loadConfig, type Config, type Env } from "../../src/config.js";
import { openDatabase, type Database } from "../../src/infra/db.js";
import { createLogger } from "../../src/infra/logger.js";
import { migrate } from "../../src/infra/migrate.js";
import { createPubSubService, type PubSubService } from "../../src/infra/pubsub.js";

export const backend = process.env.DATABASE_URL ? "postgres+redis" : "embedded";

export interface GraphQLResponse<T> {
  status: number;
  headers: Headers;
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, any> }[];
}

export interface RequestOptions {
  token?: string;
  headers?: Record<string, string>;
}

export interface TestServer {
  url: string;
  wsUrl: string;
  app: App;
  db: Database;
  pubsub: PubSubService;
  config: Config;
  /** The PostgreSQL database's URL (unset on the embedded database). */
  databaseUrl?: string;
  execute<R, V>(document: TypedDocumentNode<R, V>, variables?: V, options?: RequestOptions): Promise<GraphQLResponse<R>>;
  /** For requests the typed documents cannot express (bad syntax, depth attacks). */
  post(body: unknown, options?: RequestOptions): Promise<GraphQLResponse<any>>;
  close(): Promise<void>;
}

export async function freshPostgresDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `spindle_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export interface TestServerOptions {
  /**
   * Another replica on this server's database: its own connection pool on the same PostgreSQL
   * database (the embedded database, in memory, is shared as is). Close it before the first.
   */
  sameDatabaseAs?: TestServer;
}

export async function startTestServer(env: Partial<Env> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = `/tmp/spindle-test-${randomBytes(6).toString("hex")}`;
  let dropDatabase = async () => {};
  let closeDatabase = () => db.close();
  let db: Database;
  let databaseUrl: string | undefined;
  const primary = options.sameDatabaseAs;
  if (primary) {
    databaseUrl = primary.databaseUrl;
    if (databaseUrl) {
      db = await openDatabase({ kind: "postgres", url: databaseUrl, poolSize: 5 });
    } else {
      db = primary.db;
      closeDatabase = async () => {};
    }
  } else if (process.env.DATABASE_URL) {
    const fresh = await freshPostgresDatabase(process.env.DATABASE_URL);
    dropDatabase = fresh.drop;
    databaseUrl = fresh.url;
    db = await openDatabase({ kind: "postgres", url: fresh.url, poolSize: 5 });
  } else {
    db = await openDatabase({ kind: "pglite" });
  }
  if (!primary) await migrate(db);
  const config = loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    SPINDLE_DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(32).toString("base64url"),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    REDIS_URL: process.env.REDIS_URL,
    SPINDLE_SHUTDOWN_GRACE: "2",
    // Every test file signs up and in from 127.0.0.1: per-address limits are for the tests that
    // attack them (which set their own), and counters are this server's (and its replicas') alone in a shared Redis.
    SPINDLE_LOGIN_MAX_FAILURES_PER_ADDRESS: "10000",
    SPINDLE_SIGNUP_MAX_PER_ADDRESS: "10000",
    SPINDLE_REDIS_KEY_PREFIX: primary?.config.redisKeyPrefix ?? `spindle-test-${randomBytes(6).toString("hex")}:`,
    ...env,
  });
  const log = createLogger(config.logLevel);
  const pubsub = createPubSubService({ redisUrl: config.redisUrl, log });
  const signingKey = await loadSigningKey({ secret: config.auth.jwtSecret, dataDir });
  const app = buildApp({ config, db, pubsub, log, signingKey });
  const { port } = await app.start();
  const url = `http://127.0.0.1:${port}`;

  async function post(body: unknown, options: RequestOptions = {}): Promise<GraphQLResponse<any>> {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...options.headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`Non-JSON answer (${res.status}): ${text.slice(0, 300)}`);
    }
    return { status: res.status, headers: res.headers, data: json.data, errors: json.errors };
  }

  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    app,
    db,
    pubsub,
    config,
    databaseUrl,
    post,
    execute: (document, variables, options) => post({ query: print(document), variables }, options),
    async close() {
      await app.stop();
      await pubsub.close();
      await closeDatabase();
      await dropDatabase();
    },
  };
}

/** The data of a response that must have succeeded; otherwise fails with the errors. */
export function ok<T>(response: GraphQLResponse<T>): T {
  if (response.errors?.length || !response.data) {
    throw new Error(`Expected success, got ${response.status}: ${JSON.stringify(response.errors)}`);
  }
  return response.data;
}

/** The single error's code (and the whole error) of a response that must have failed. */
export function errorOf(response: GraphQLResponse<unknown>) {
  const error = response.errors?.[0];
  if (!error) throw new Error(`Expected an error, got ${response.status}: ${JSON.stringify(response.data)}`);
  return { code: error.extensions?.code as string | undefined, message: error.message, extensions: error.extensions ?? {}, status: response.status };
}

/** The fields a VALIDATION (or CONFLICT) error names, in its order. */
export const fieldsOf = (error: { extensions: Record<string, any> }): string[] =>
  ((error.extensions.fields ?? []) as { field: string }[]).map((f) => f.field);
