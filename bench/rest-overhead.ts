// What the legacy REST layer itself costs: a worker's status read through AiSpinner's
// GET /workers/{workspace_id}/{node_id}/status and through the GraphQL operation that route runs
// (AiWorkerByNode, posted to /graphql), side by side on one server, with one token, for one worker.
// Each kind gets the same bounded number of requests at a fixed concurrency, in alternating rounds
// (so machine noise hits both alike); it prints requests per second of each and their ratio.
//
//   npx tsx bench/rest-overhead.ts              # embedded (PGlite, in-process pub/sub)
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/rest-overhead.ts
//
// The server runs in this process; the requests come from a worker thread (bench/http-load.mjs)
// with its own event loop. Not a test: it prints figures (copied into BENCHMARKS.md with the command).
import { Worker } from "node:worker_threads";
import { print } from "graphql";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);

const { AiWorkerByNodeDocument } = await import("../src/generated/rest-graphql.js");
const { createMachineDirect } = await import("../test/authz/world.js");
const { ownedWorkspace } = await import("../test/helpers/factories.js");
const { backend, startTestServer } = await import("../test/helpers/server.js");

const server = await startTestServer({ LOG_LEVEL: "silent" });
const load = new Worker(new URL("./http-load.mjs", import.meta.url));
try {
  const { owner, workspaceId } = await ownedWorkspace(server);
  await createMachineDirect(server, workspaceId);
  const { legacyId } = await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId } });
  const headers = { authorization: `Bearer ${owner.accessToken}`, "content-type": "application/json" };
  const put = await fetch(`${server.url}/workspaces/${legacyId}/graph`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ version: 0, graph_json: { nodes: [{ id: "node_1", type: "code.worker", data: { label: "W", x: 0, y: 0, cfg: {} } }], edges: [] } }),
  });
  const deploy = await fetch(`${server.url}/workers/deploy`, {
    method: "POST",
    headers,
    body: JSON.stringify({ workspace_id: legacyId, node_id: "node_1", code: "def tick(ctx): pass", tick_interval: 10 }),
  });
  if (put.status !== 200 || deploy.status !== 200) throw new Error(`set-up failed: ${put.status} ${deploy.status}`);

  const kinds = {
    rest: { url: `${server.url}/workers/${legacyId}/node_1/status`, init: { headers } },
    graphql: {
      url: `${server.url}/graphql`,
      init: { method: "POST", headers, body: JSON.stringify({ query: print(AiWorkerByNodeDocument), variables: { legacyId, blockId: "node_1" } }) },
    },
  };
  // Both answer the same worker before anything is timed.
  const rest = await (await fetch(kinds.rest.url, kinds.rest.init)).json();
  const graphql = await (await fetch(kinds.graphql.url, kinds.graphql.init)).json();
  if (rest.status !== graphql.data.workspaceByLegacyId.workers.edges[0].node.status.toLowerCase()) throw new Error("the two reads disagree");

  const run = (kind: keyof typeof kinds, count: number) =>
    new Promise<{ ms: number; failed: number }>((resolve) => {
      load.once("message", resolve);
      load.postMessage({ ...kinds[kind], count, concurrency: CONCURRENCY });
    });
  for (const kind of ["rest", "graphql"] as const) await run(kind, 200);

  const total = { rest: { ms: 0, failed: 0 }, graphql: { ms: 0, failed: 0 } };
  const perRound = Math.ceil(REQUESTS / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of round % 2 ? (["graphql", "rest"] as const) : (["rest", "graphql"] as const)) {
      const { ms, failed } = await run(kind, perRound);
      total[kind].ms += ms;
      total[kind].failed += failed;
    }
  }
  const count = perRound * ROUNDS;
  if (total.rest.failed || total.graphql.failed) throw new Error(`non-200 answers: ${JSON.stringify(total)}`);
  const rps = (ms: number) => (count / ms) * 1000;
  const [r, g] = [rps(total.rest.ms), rps(total.graphql.ms)];
  console.log(`worker status, ${backend}, ${count} requests per kind at concurrency ${CONCURRENCY}, ${ROUNDS} alternating rounds`);
  console.log(`  REST    GET /workers/{ws}/{node}/status  ${r.toFixed(0)} req/s`);
  console.log(`  GraphQL POST /graphql (AiWorkerByNode)   ${g.toFixed(0)} req/s`);
  console.log(`  REST / GraphQL: ${(r / g).toFixed(2)}`);
} finally {
  await load.terminate();
  await server.close();
}
process.exit(0);
