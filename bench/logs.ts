// Live-logs benchmark: lines per second ingested through appendLogs, and the latency from sending
// an append to a subscriber receiving the line, with 100 and 1,000 subscribers (graphql-ws).
//
//   npx tsx bench/logs.ts                       # embedded: PGlite, in-process pub/sub, one server
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
//     npx tsx bench/logs.ts                     # PostgreSQL + Redis, two replicas on one database
//
// The servers run in this process (two in-process replicas share nothing but PostgreSQL and Redis);
// the subscribers run in a worker thread (bench/logs-subscribers.mjs) with its own event loop, so receiving does not queue
// behind serving. With two replicas, appends go to replica A and half the subscribers are on B.
// Not a test: it prints figures (copied into BENCHMARKS.md with the command that produced them).
import { Worker } from "node:worker_threads";

const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 5);
const SUBSCRIBER_COUNTS = (process.env.BENCH_SUBSCRIBERS ?? "100,1000").split(",").map(Number);
const now = () => performance.timeOrigin + performance.now();

interface SubscriberJob {
  urls: string[];
  tokens: string[];
  sourceId: string;
  after: string;
  count: number;
}

await main();

async function main() {
  const { AppendLogsDocument } = await import("../test/generated/graphql.js");
  const { addMember, createMachineDirect } = await import("../test/authz/world.js");
  const { createUser, signIn, unique } = await import("../test/helpers/factories.js");
  const { ok, startTestServer } = await import("../test/helpers/server.js");
  const replicated = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
  const mode = replicated ? "PostgreSQL + Redis, two replicas" : "embedded (PGlite, in-process pub/sub)";
  console.log(`# live logs benchmark: ${mode}`);

  const a = await startTestServer({ LOG_LEVEL: "silent" });
  const b = replicated ? await startTestServer({ LOG_LEVEL: "silent" }, { sameDatabaseAs: a }) : undefined;
  const replicas = b ? [a, b] : [a];
  const prisma = a.db.prisma;
  const user = await createUser(a);
  const workspace = await prisma.workspace.create({ data: { name: unique("bench") } });
  await addMember(a, workspace.id, user.id, "OWNER");
  const machine = await createMachineDirect(a, workspace.id);
  const tokens = await Promise.all(replicas.map(async (server) => (await signIn(server, user)).accessToken));
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

  // 1. Ingestion: batches of 500 lines of ~120 bytes, 8 sources written concurrently (a source's
  // batches serialize on its row), for a fixed number of batches.
  const line = "x".repeat(120);
  const batch = Array.from({ length: 500 }, () => line);
  const sources = await Promise.all(Array.from({ length: 8 }, worker));
  for (const sourceId of sources) await append(a, sourceId, batch.slice(0, 10));
  const batchesPerSource = 25;
  let started = now();
  await Promise.all(
    sources.map(async (sourceId, i) => {
      for (let n = 0; n < batchesPerSource; n++) await append(replicas[i % replicas.length]!, sourceId, batch);
    }),
  );
  let seconds = (now() - started) / 1000;
  const total = sources.length * batchesPerSource * batch.length;
  console.log(`ingest: ${total} lines in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} lines/s (8 sources, batches of 500, to ${replicas.length} replica(s))`);

  // One source, one writer, batches of 100: the per-source ordered path.
  const single = await worker();
  started = now();
  for (let n = 0; n < 50; n++) await append(a, single, batch.slice(0, 100));
  seconds = (now() - started) / 1000;
  console.log(`ingest: 5000 lines in ${seconds.toFixed(2)} s = ${Math.round(5000 / seconds)} lines/s (1 source, 1 writer, batches of 100)`);

  // 2. Latency with N subscribers: 10 batches of 5 lines per second into one source, for LATENCY_SECONDS.
  for (const count of SUBSCRIBER_COUNTS) {
    const sourceId = await worker();
    const { lastCursor: after } = await append(a, sourceId, ["0 before"]);
    const thread = new Worker(new URL("./logs-subscribers.mjs", import.meta.url), {
      workerData: { urls: replicas.map((r) => r.wsUrl), tokens, sourceId, after, count } satisfies SubscriberJob,
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
    // Warm-up lines until every subscriber is demonstrably live.
    const warm = setInterval(() => void append(a, sourceId, ["warm-up"]).catch(() => {}), 500);
    await waitFor("ready", 60_000);
    clearInterval(warm);
    await new Promise((resolve) => setTimeout(resolve, 500));
    thread.postMessage({ type: "collect" });
    const end = now() + LATENCY_SECONDS * 1000;
    let sent = 0;
    while (now() < end) {
      const tick = now();
      await append(a, sourceId, Array.from({ length: 5 }, () => `${now()} payload`));
      sent += 5;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 100 - (now() - tick))));
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    thread.postMessage({ type: "report" });
    const report = (await waitFor("report", 30_000)) as unknown as { latencies: number[]; lines: number };
    await thread.terminate();
    const sorted = Float64Array.from(report.latencies).sort();
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
    console.log(
      `latency, ${count} subscribers${b ? " (half on each replica, appends on A)" : ""}: ${sent} lines sent at 50 lines/s in batches of 5, ` +
        `${report.lines} of ${sent * count} deliveries received; append sent -> line received: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`,
    );
  }

  if (b) await b.close();
  await a.close();
  process.exit(0);
}
