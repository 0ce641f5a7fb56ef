// Start-up time and idle memory of the server process: the compiled build against tsx, side by side.
//
//   npx tsx bench/startup.ts                       # embedded: PGlite in a data folder, in-process pub/sub
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
//     npx tsx bench/startup.ts                     # PostgreSQL + Redis (a fresh database, dropped at the end)
//
// Each run spawns a server (NODE_ENV=production, PORT=0) on an already migrated database, as a restart
// would, and times spawn -> "Spindle is listening" logged, and spawn -> /health answering 200. Three ways:
//   tsx        `tsx src/main.ts`, how `npm start` ran before the build (its transform cache warm)
//   compiled   `node dist/main.js`
//   npm-start  `npm start`: npm, the prestart check that dist/ is up to date, then `node dist/main.js`
// Idle memory: 3 s after /health answered, the server process's RSS and, for npm and tsx, the RSS
// of the whole tree (their own node processes stay resident); V8's used heap from /metrics.
// Rounds alternate the order of the three. Not a test: it prints figures for BENCHMARKS.md.
import { buildIfStale, freshBackend, mb, rssOf, startSpindle, type Runtime } from "../test/helpers/server-process.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SETTLE_MS = 3_000;
const RUNTIMES: Runtime[] = ["tsx", "compiled", "npm-start"];

interface Sample {
  listeningMs: number;
  healthMs: number;
  rss: number;
  tree: number;
  heapUsed: number;
}

buildIfStale();
const backend = await freshBackend();
try {
  console.log(`# start-up and idle memory: ${backend.kind}, ${ROUNDS} rounds`);
  // The first start migrates the database and creates the administrator; a tsx start fills tsx's cache.
  for (const runtime of ["compiled", "tsx"] as const) await (await startSpindle({ runtime, backend })).stop();

  const samples = new Map<Runtime, Sample[]>(RUNTIMES.map((r) => [r, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = RUNTIMES.map((_, i) => RUNTIMES[(i + round) % RUNTIMES.length]!);
    for (const runtime of order) {
      const server = await startSpindle({ runtime, backend });
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const { rss } = rssOf(server.serverPid);
      const { tree } = rssOf(server.child.pid!);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const heapUsed = Number(/^spindle_process_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
      await server.stop();
      samples.get(runtime)!.push({ listeningMs: server.listeningMs, healthMs: server.healthMs, rss, tree, heapUsed });
      console.log(
        `  ${runtime.padEnd(9)} listening ${server.listeningMs.toFixed(0)} ms, /health ${server.healthMs.toFixed(0)} ms, ` +
          `RSS ${mb(rss)} MB (tree ${mb(tree)} MB), heap used ${mb(heapUsed)} MB`,
      );
    }
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const range = (values: number[], unit: (v: number) => string) =>
    `${unit(median(values))} (${unit(Math.min(...values))}-${unit(Math.max(...values))})`;
  const ms = (v: number) => v.toFixed(0);
  console.log(`\nmedian (min-max) of ${ROUNDS}, ${backend.kind}:`);
  console.log("| runtime | spawn -> listening, ms | spawn -> /health 200, ms | server RSS, MB | RSS with npm/tsx processes, MB | heap used, MB |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const [runtime, list] of samples) {
    const of = (key: keyof Sample) => list.map((s) => s[key]);
    console.log(
      `| ${runtime} | ${range(of("listeningMs"), ms)} | ${range(of("healthMs"), ms)} | ${range(of("rss"), mb)} | ${range(of("tree"), mb)} | ${range(of("heapUsed"), mb)} |`,
    );
  }
} finally {
  await backend.drop();
}
