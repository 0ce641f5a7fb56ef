// What the legacy REST layer itself costs: a read through a legacy route, side by side with the one
// GraphQL query a GraphQL client would send for the same answer, on one server, with one token.
// Four routes, one per kind of route:
//   aispinner  GET /workers/{ws}/{node}/status          runs one operation (AiWorkerByNode): the layer alone
//   spunto     GET /api/orgs/:o/projects/:p/workers/:w   runs `worker(id)`, then checks org and project
//   api-web    GET /api/web/tasks/:id                    runs `defaultWorkspace` and `task(id)` (paths name no workspace)
//   api-v1     GET /api/v1/tasks/{id}                    runs `defaultWorkspace` and `task(id)` in one request
// Each kind gets the same bounded number of requests at a fixed concurrency, in alternating rounds
// (so machine noise hits both alike); it prints requests per second of each and their ratio.
//
//   npx tsx bench/rest-overhead.ts              # embedded (PGlite, in-process pub/sub)
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/rest-overhead.ts
//   BENCH_CASES=spunto,api-web npx tsx bench/rest-overhead.ts
//
// The server runs in this process; the requests come from a worker thread (bench/http-load.mjs)
// with its own event loop. Not a test: it prints figures (copied into BENCHMARKS.md with the command).
import { Worker } from "node:worker_threads";
import { print } from "graphql";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const CASES = (process.env.BENCH_CASES ?? "aispinner,spunto,api-web,api-v1").split(",");

const { AiWorkerByNodeDocument } = await import("../src/generated/rest-graphql.js");
const { createMachineDirect } = await import("../test/authz/world.js");
const { ownedWorkspace } = await import("../test/helpers/factories.js");
const { backend, startTestServer } = await import("../test/helpers/server.js");

type Request = { url: string; init: RequestInit };
interface Case {
  rest: Request & { label: string };
  graphql: Request & { label: string };
  /** Both answers name the same object in the same state. */
  agree(rest: any, graphql: any): boolean;
}

const server = await startTestServer({ LOG_LEVEL: "silent" });
const load = new Worker(new URL("./http-load.mjs", import.meta.url));

const { owner, workspaceId } = await ownedWorkspace(server);
await createMachineDirect(server, workspaceId);
const headers = { authorization: `Bearer ${owner.accessToken}`, "content-type": "application/json" };
const graphqlRequest = (label: string, query: string, variables: Record<string, unknown>) => ({
  label,
  url: `${server.url}/graphql`,
  init: { method: "POST", headers, body: JSON.stringify({ query, variables }) },
});

async function call(path: string, method: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`set-up ${method} ${path} answered ${res.status}: ${await res.text()}`);
  return res.json() as Promise<any>;
}

const setups: Record<string, () => Promise<Case>> = {
  async aispinner() {
    const { legacyId } = await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId } });
    await call(`/workspaces/${legacyId}/graph`, "PUT", {
      version: 0,
      graph_json: { nodes: [{ id: "node_1", type: "code.worker", data: { label: "W", x: 0, y: 0, cfg: {} } }], edges: [] },
    });
    await call("/workers/deploy", "POST", { workspace_id: legacyId, node_id: "node_1", code: "def tick(ctx): pass", tick_interval: 10 });
    return {
      rest: { label: "GET /workers/{ws}/{node}/status", url: `${server.url}/workers/${legacyId}/node_1/status`, init: { headers } },
      graphql: graphqlRequest("AiWorkerByNode", print(AiWorkerByNodeDocument), { legacyId, blockId: "node_1" }),
      agree: (rest, graphql) => rest.status === graphql.data.workspaceByLegacyId.workers.edges[0].node.status.toLowerCase(),
    };
  },
  async spunto() {
    const project = await call(`/api/orgs/${workspaceId}/projects`, "POST", { name: "Bench" });
    const worker = await call(`/api/orgs/${workspaceId}/projects/${project.id}/workers`, "POST", { name: "api", image: "nginx:1.27" });
    const query = "query($id: ID!) { worker(id: $id) { id workspaceId projectId name image command env status statusReason machineId createdAt updatedAt } }";
    return {
      rest: { label: "GET /api/orgs/:o/projects/:p/workers/:w", url: `${server.url}/api/orgs/${workspaceId}/projects/${project.id}/workers/${worker.id}`, init: { headers } },
      graphql: graphqlRequest("worker(id)", query, { id: worker.id }),
      agree: (rest, graphql) => rest.id === graphql.data.worker.id && rest.status === graphql.data.worker.status.toLowerCase(),
    };
  },
  async "api-web"() {
    await call("/api/admin/projects", "POST", { key: "WEBBENCH", name: "Web bench" });
    const task = await call("/api/web/tasks", "POST", { projectKey: "webbench", description: "benchmark task" });
    const query = "query($id: ID!) { task(id: $id) { id title description status priority createdAt updatedAt project { key } stages { index name status } } }";
    return {
      rest: { label: "GET /api/web/tasks/:id", url: `${server.url}/api/web/tasks/${task.id}`, init: { headers } },
      graphql: graphqlRequest("task(id)", query, { id: task.id }),
      agree: (rest, graphql) => rest.id === graphql.data.task.id && rest.status === graphql.data.task.status.toLowerCase(),
    };
  },
  async "api-v1"() {
    const task = await call("/api/v1/tasks/", "POST", { title: "benchmark task", priority: "high" });
    const query = "query($id: ID!) { task(id: $id) { id workspaceId title description instructions status priority targetAgentId targetMachineId requiredCapabilities deadline output error createdAt updatedAt startedAt finishedAt machine { id } } }";
    return {
      rest: { label: "GET /api/v1/tasks/{id}", url: `${server.url}/api/v1/tasks/${task.id}`, init: { headers } },
      graphql: graphqlRequest("task(id)", query, { id: task.id }),
      agree: (rest, graphql) => rest.id === graphql.data.task.id && rest.priority === graphql.data.task.priority.toLowerCase(),
    };
  },
};

const run = (request: Request, count: number) =>
  new Promise<{ ms: number; failed: number }>((resolve) => {
    load.once("message", resolve);
    load.postMessage({ ...request, count, concurrency: CONCURRENCY });
  });

try {
  for (const name of CASES) {
    const setup = setups[name];
    if (!setup) throw new Error(`BENCH_CASES: no case ${name} (${Object.keys(setups).join(", ")})`);
    const bench = await setup();
    // Both answer the same object before anything is timed.
    const [rest, graphql] = await Promise.all([bench.rest, bench.graphql].map(async (r) => (await fetch(r.url, r.init)).json()));
    if (!bench.agree(rest, graphql)) throw new Error(`${name}: the two reads disagree: ${JSON.stringify({ rest, graphql })}`);
    for (const kind of ["rest", "graphql"] as const) await run(bench[kind], 200);

    const total = { rest: { ms: 0, failed: 0 }, graphql: { ms: 0, failed: 0 } };
    const perRound = Math.ceil(REQUESTS / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of round % 2 ? (["graphql", "rest"] as const) : (["rest", "graphql"] as const)) {
        const { ms, failed } = await run(bench[kind], perRound);
        total[kind].ms += ms;
        total[kind].failed += failed;
      }
    }
    const count = perRound * ROUNDS;
    if (total.rest.failed || total.graphql.failed) throw new Error(`${name}: non-200 answers: ${JSON.stringify(total)}`);
    const rps = (ms: number) => (count / ms) * 1000;
    const [r, g] = [rps(total.rest.ms), rps(total.graphql.ms)];
    console.log(`${name}, ${backend}, ${count} requests per kind at concurrency ${CONCURRENCY}, ${ROUNDS} alternating rounds`);
    console.log(`  REST    ${bench.rest.label.padEnd(42)} ${r.toFixed(0)} req/s`);
    console.log(`  GraphQL ${bench.graphql.label.padEnd(42)} ${g.toFixed(0)} req/s`);
    console.log(`  REST / GraphQL: ${(r / g).toFixed(2)}`);
  }
} finally {
  await load.terminate();
  await server.close();
}
process.exit(0);
