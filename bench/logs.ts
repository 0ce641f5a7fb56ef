// Live-logs benchmark: lines per second ingested through appendLogs, and the latency from sending
// an append to a subscriber receiving the line, with 100 and 1,000 subscribers (graphql-ws), for a
// busy source (100 lines/s) and a quiet one (a line now and then), with a delivery check.
//
//   npx tsx bench/logs.ts                       # embedded: PGlite, in-process pub/sub, one server
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
//     npx tsx bench/logs.ts                     # PostgreSQL + Redis, two replicas on one database
//
// Replica A runs in this process; with PostgreSQL + Redis, replica B is a server process of its own
// (`tsx src/main.ts`, as a second replica would be), on A's database and the same Redis. The
// writers of the ingestion run (bench/logs-writers.mjs) and the subscribers
// (bench/logs-subscribers.mjs) run in worker threads with their own event loops, like the machines
// and browsers they stand for, so sending and receiving do not queue behind serving. Ingestion goes
// to replica A alone (one process); in the latency runs appends go to A and half the subscribers
// are on B. The process runs with NODE_ENV=production (libraries such as graphql-js skip their
// development checks then), as a deployed server does. Not a test: it prints figures (copied into
// BENCHMARKS.md with the command that produced them).
//
// Options: BENCH_SUBSCRIBERS=100,1000  BENCH_LATENCY_SECONDS=5  BENCH_RATE=100 (lines/s)
// BENCH_BATCH=10 (lines per append: 10 appends a second at 100 lines/s)  BENCH_INGEST_ROUNDS=3  BENCH_PARTS=ingest,latency
// BENCH_REPLICA=inline (replica B in this process too, as this benchmark ran before: both
// replicas' deliveries then share one thread)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";

// Before any library is loaded: graphql-js decides at import whether to run its development checks.
process.env.NODE_ENV = "production";

const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 5);
const SUBSCRIBER_COUNTS = (process.env.BENCH_SUBSCRIBERS ?? "100,1000").split(",").map(Number);
const RATE = Number(process.env.BENCH_RATE ?? 100);
const BATCH = Number(process.env.BENCH_BATCH ?? 10);
const INGEST_ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 3);
const PARTS = new Set((process.env.BENCH_PARTS ?? "ingest,latency").split(","));
const INLINE_REPLICA = process.env.BENCH_REPLICA === "inline";
const QUIET_APPENDS = 20;
const QUIET_INTERVAL_MS = 250;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SubscriberJob {
  urls: string[];
  tokens: string[];
  sourceId: string;
  after: string;
  count: number;
}

interface Deliveries {
  /** Lines appended while measuring, and over how long. */
  lines: number;
  seconds: number;
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  errors: number;
  /** Items (stream messages) that carried the measured lines, over all subscribers. */
  items: number;
  latencies: number[];
}

await main();

async function main() {
  const { AppendLogsDocument } = await import("../test/generated/graphql.js");
  const { addMember, createMachineDirect } = await import("../test/authz/world.js");
  const { createUser, signIn, unique } = await import("../test/helpers/factories.js");
  const { ok, startTestServer } = await import("../test/helpers/server.js");
  const replicated = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
  const mode = replicated
    ? `PostgreSQL + Redis, two replicas (B ${INLINE_REPLICA ? "in this process too" : "in a process of its own"})`
    : "embedded (PGlite, in-process pub/sub, one server)";
  console.log(`# live logs benchmark: ${mode}, ${new Date().toISOString()}`);

  const a = await startTestServer({ LOG_LEVEL: "silent" });
  const b = !replicated ? undefined : INLINE_REPLICA ? inlineReplica(await startTestServer({ LOG_LEVEL: "silent" }, { sameDatabaseAs: a })) : await startReplica(a.databaseUrl!);
  const prisma = a.db.prisma;
  const user = await createUser(a);
  const workspace = await prisma.workspace.create({ data: { name: unique("bench") } });
  await addMember(a, workspace.id, user.id, "OWNER");
  const machine = await createMachineDirect(a, workspace.id);
  // Each replica signs its own tokens here: sign in on each.
  const wsUrls = [a.wsUrl, ...(b ? [b.url.replace(/^http/, "ws") + "/graphql"] : [])];
  const tokens = [(await signIn(a, user)).accessToken, ...(b ? [await b.login(user.email, user.password)] : [])];
  const worker = async () =>
    (await prisma.worker.create({ data: { workspaceId: workspace.id, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } })).id;

  let sequence = 0;
  // A keep-alive connection the server closed just as it was reused fails the request; the retry
  // with the same sequence is stored once (what a machine would do).
  const append = async (server: typeof a, sourceId: string, messages: string[]) => {
    const input = { source: { type: "WORKER" as const, id: sourceId }, sequence: String(++sequence), lines: messages.map((message) => ({ level: "INFO" as const, message })) };
    for (let attempt = 1; ; attempt++) {
      try {
        return ok(await server.execute(AppendLogsDocument, { input }, { token: machine.credential })).appendLogs;
      } catch (error) {
        if (attempt >= 3 || !String((error as Error).cause ?? error).includes("closed")) throw error;
      }
    }
  };

  if (PARTS.has("ingest")) {
    const writers = new Worker(new URL("./logs-writers.mjs", import.meta.url));
    const write = (job: { sources: string[]; batches: number; lines: { level: string; message: string }[]; url: string[] }) =>
      new Promise<{ ms: number; stored: number }>((resolve, reject) => {
        writers.once("message", (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
        writers.postMessage({ ...job, token: machine.credential, sequencePrefix: `${Date.now()}-${++sequence}` });
      });
    const graphqlUrls = [`${a.url}/graphql`];
    // Batches of 500 lines of ~120 bytes, 8 sources written concurrently (a source's batches
    // serialize on its row), 25 batches each: 100,000 lines a round, on fresh sources.
    const lines = Array.from({ length: 500 }, () => ({ level: "INFO", message: "x".repeat(120) }));
    for (let round = 1; round <= INGEST_ROUNDS; round++) {
      const sources = await Promise.all(Array.from({ length: 8 }, worker));
      await write({ sources, batches: 1, lines: lines.slice(0, 10), url: graphqlUrls });
      const { ms, stored } = await write({ sources, batches: 25, lines, url: graphqlUrls });
      console.log(
        `ingest, round ${round}: ${stored} lines in ${(ms / 1000).toFixed(2)} s = ${Math.round(stored / (ms / 1000))} lines/s (8 sources, batches of 500, one server)`,
      );
    }
    // One source, one writer, batches of 100: the per-source ordered path.
    const single = [await worker()];
    const { ms, stored } = await write({ sources: single, batches: 50, lines: lines.slice(0, 100), url: graphqlUrls });
    console.log(`ingest: ${stored} lines in ${(ms / 1000).toFixed(2)} s = ${Math.round(stored / (ms / 1000))} lines/s (1 source, 1 writer, batches of 100)`);
    await writers.terminate();
  }

  if (PARTS.has("latency")) {
    for (const count of SUBSCRIBER_COUNTS) {
      const busy = await follow(count, async (sourceId) => {
        const start = now();
        const end = start + LATENCY_SECONDS * 1000;
        const every = (1000 * BATCH) / RATE;
        let first: string | undefined;
        let last = "";
        for (let n = 0; now() < end; n++) {
          const due = start + n * every;
          await sleep(Math.max(0, due - now()));
          const written = await append(a, sourceId, Array.from({ length: BATCH }, () => `${now()} payload`));
          first ??= written.firstCursor;
          last = written.lastCursor;
        }
        return { first: first!, last };
      });
      print(`busy source, ${count} subscribers${b ? " (half on each replica, appends on A)" : ""}, batches of ${BATCH} lines`, busy);

      const quiet = await follow(count, async (sourceId) => {
        let first: string | undefined;
        let last = "";
        for (let n = 0; n < QUIET_APPENDS; n++) {
          await sleep(QUIET_INTERVAL_MS);
          const written = await append(a, sourceId, [`${now()} quiet`]);
          first ??= written.firstCursor;
          last = written.lastCursor;
        }
        return { first: first!, last };
      });
      print(`quiet source, ${count} subscribers${b ? " (half on each replica, appends on A)" : ""}, one line every ${QUIET_INTERVAL_MS} ms`, quiet);
    }
  }

  await b?.stop();
  await a.close();
  process.exit(0);

  /** Starts `count` subscribers on a fresh source, waits until all are live, runs `load`, and collects the deliveries. */
  async function follow(count: number, load: (sourceId: string) => Promise<{ first: string; last: string }>): Promise<Deliveries> {
    const sourceId = await worker();
    const { lastCursor: after } = await append(a, sourceId, ["0 before"]);
    const thread = new Worker(new URL("./logs-subscribers.mjs", import.meta.url), {
      workerData: { urls: wsUrls, tokens, sourceId, after, count } satisfies SubscriberJob,
    });
    const messages: { type: string; [k: string]: unknown }[] = [];
    let wake = () => {};
    thread.on("message", (m) => {
      messages.push(m);
      wake();
    });
    thread.on("error", (e) => {
      messages.push({ type: "error", error: e.message });
      wake();
    });
    const waitFor = async (type: string, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const error = messages.find((m) => m.type === "error");
        if (error) throw new Error(`subscriber error: ${String(error.error)}`);
        const found = messages.find((m) => m.type === type);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no ${type} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    };
    // Warm-up lines until every subscriber is demonstrably live; the timed lines come after the last.
    let warming: Promise<unknown> = Promise.resolve();
    const warm = setInterval(() => {
      warming = warming.then(() => append(a, sourceId, ["warm-up"])).catch(() => {});
    }, 500);
    await waitFor("ready", 60_000);
    clearInterval(warm);
    await warming;
    await sleep(500);
    const started = now();
    const { first, last } = await load(sourceId);
    const seconds = (now() - started) / 1000;
    await sleep(2_000);
    thread.postMessage({ type: "report", first: Number(first), last: Number(last) });
    const report = (await waitFor("report", 30_000)) as unknown as Deliveries;
    await thread.terminate();
    return { ...report, lines: Number(last) - Number(first) + 1, seconds };
  }
}

/** Replica B in this process (BENCH_REPLICA=inline). */
function inlineReplica(server: { url: string; close(): Promise<void> }) {
  return { url: server.url, login: (login: string, password: string) => loginAt(server.url, login, password), stop: () => server.close() };
}

async function loginAt(url: string, login: string, password: string): Promise<string> {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "mutation($i: LoginInput!) { login(input: $i) { accessToken } }", variables: { i: { login, password } } }),
  });
  return ((await res.json()) as { data: { login: { accessToken: string } } }).data.login.accessToken;
}

/** Replica B: `tsx src/main.ts` in its own process, on replica A's database and the same Redis. */
async function startReplica(databaseUrl: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: path.join(import.meta.dirname, ".."),
    env: {
      ...process.env,
      NODE_ENV: "production",
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: databaseUrl,
      JWT_SECRET: randomBytes(32).toString("hex"),
      SPINDLE_DATA_DIR: mkdtempSync(path.join(tmpdir(), "spindle-bench-replica-")),
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica B did not start:\n${output}`)), 60_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)\/graphql".*Spindle is listening/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => void (output += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`replica B exited with ${code}:\n${output}`)));
  });
  return {
    url,
    login: (login: string, password: string) => loginAt(url, login, password),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

function print(what: string, d: Deliveries) {
  const sorted = Float64Array.from(d.latencies).sort();
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  const subscribers = d.expected / d.lines;
  console.log(
    `latency, ${what}: ${d.lines} lines at ${(d.lines / d.seconds).toFixed(0)} lines/s; ${d.received} of ${d.expected} deliveries ` +
      `(lost ${d.lost}, duplicated ${d.duplicated}, out of order ${d.outOfOrder}, stream errors ${d.errors}) in ${(d.items / subscribers).toFixed(0)} items per subscriber; ` +
      `append sent -> line received: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms`,
  );
}
