// The request path side by side with the least a server can do: bare node:http + pg answering a
// worker's status by id (bench/bare-reference.mjs) against Spindle answering the same read over
// GraphQL with a bearer token, plus Spindle's dashboard list, machine heartbeats and task claims.
// Both servers run as their own processes (Spindle with NODE_ENV=production, compiled when
// `npm run build` has run, else through tsx) on the same PostgreSQL; wrk (Debian package `wrk`)
// sends the load from a third process. Kinds run in alternating rounds so machine noise hits all
// alike; each figure is the median round, and the status read is also given as a ratio to the
// reference's median.
//
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/request-path.ts
//
// BENCH_SECONDS (per round, default 5), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 32).
// Not a test: it prints figures (copied into BENCHMARKS.md with the command). Every answer is
// checked: a non-200 or a GraphQL error in any round fails the run.
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MACHINE_CREDENTIAL_PREFIX, MACHINE_RECOVERY_PREFIX, displayPrefix, generateSecret } from "../src/auth/api-key-format.js";
import { hashPassword } from "../src/auth/passwords.js";
import { sha256 } from "../src/auth/secrets.js";
import { openDatabase } from "../src/infra/db.js";
import { migrate } from "../src/infra/migrate.js";
import { freshPostgresDatabase } from "../test/helpers/server.js";

const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) throw new Error("Set DATABASE_URL (and REDIS_URL): the reference server reads PostgreSQL");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const MACHINES = 64;
const WORKERS = 100;
const TASKS = 60_000;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
execFileSync("sh", ["-c", "command -v wrk"], { stdio: "ignore" }); // fails early when wrk is missing (apt-get install wrk)

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on("error", reject);
  });
}

async function waitForHttp(url: string, child: ChildProcess) {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`);
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not answer`);
}

// --- data: one owner, one workspace, 100 workers on 64 machines with 5 transitions each, tasks ---
const fresh = await freshPostgresDatabase(DATABASE_URL);
const db = await openDatabase({ kind: "postgres", url: fresh.url });
await migrate(db);
const tag = randomBytes(4).toString("hex");
const password = randomBytes(12).toString("hex");
const user = await db.prisma.user.create({
  data: { email: `bench-${tag}@example.test`, username: `bench${tag}`, passwordHash: await hashPassword(password), emailVerifiedAt: new Date() },
});
const workspace = await db.prisma.workspace.create({ data: { name: `bench-${tag}`, members: { create: { userId: user.id, role: "OWNER" } } } });
console.error("seeding: machines");
const credentials: string[] = [];
const machineIds: string[] = [];
for (let i = 0; i < MACHINES; i++) {
  const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
  const machine = await db.prisma.machine.create({
    data: {
      workspaceId: workspace.id,
      name: `m${i}-${tag}`,
      credentialPrefix: displayPrefix(credential),
      credentialHash: sha256(credential),
      recoveryHash: sha256(generateSecret(MACHINE_RECOVERY_PREFIX)),
      capabilities: ["shell"],
      lastHeartbeatAt: new Date(),
      announcedOnline: true,
    },
  });
  credentials.push(credential);
  machineIds.push(machine.id);
}
console.error("seeding: workers");
const workerIds: string[] = [];
for (let i = 0; i < WORKERS; i++) {
  const worker = await db.prisma.worker.create({
    data: {
      workspaceId: workspace.id,
      kind: "CONTAINER",
      name: `w${i}`,
      image: "busybox",
      status: "RUNNING",
      machineId: machineIds[i % MACHINES],
      tickCount: i,
      transitions: {
        create: [
          { from: null, to: "DEPLOYING", action: "deploy", actorType: "USER", actorId: user.id },
          { from: "DEPLOYING", to: "RUNNING", action: "report", actorType: "MACHINE" },
          { from: "RUNNING", to: "STOPPED", action: "stop", actorType: "USER", actorId: user.id },
          { from: "STOPPED", to: "DEPLOYING", action: "start", actorType: "USER", actorId: user.id },
          { from: "DEPLOYING", to: "RUNNING", action: "report", actorType: "MACHINE" },
        ],
      },
    },
  });
  workerIds.push(worker.id);
}
console.error("seeding: tasks");
await db.prisma.$executeRaw`
  INSERT INTO "Task" ("id", "workspaceId", "title", "requiredCapabilities", "updatedAt")
  SELECT gen_random_uuid(), ${workspace.id}::uuid, 'bench task ' || n, '{}', (now() AT TIME ZONE 'UTC')
    FROM generate_series(1, ${TASKS}) AS n`;

// --- servers ---
const barePort = await freePort();
const bare = fork(path.join(root, "bench/bare-reference.mjs"), [], { env: { ...process.env, DATABASE_URL: fresh.url, PORT: String(barePort) }, stdio: "inherit" });
const spindlePort = await freePort();
const compiled = path.join(root, "dist/main.js");
const spindleEnv = {
  ...process.env,
  NODE_ENV: "production",
  DATABASE_URL: fresh.url,
  PORT: String(spindlePort),
  HOST: "127.0.0.1",
  LOG_LEVEL: "warn",
  JWT_SECRET: process.env.JWT_SECRET ?? randomBytes(32).toString("hex"),
  SPINDLE_ADMIN_PASSWORD: randomBytes(12).toString("hex"),
};
const spindle = existsSync(compiled)
  ? spawn(process.execPath, [compiled], { env: spindleEnv, stdio: ["ignore", "ignore", "inherit"] })
  : spawn(process.execPath, ["--import", "tsx", path.join(root, "src/main.ts")], { env: spindleEnv, stdio: ["ignore", "ignore", "inherit"] });
const bareUrl = `http://127.0.0.1:${barePort}`;
const spindleUrl = `http://127.0.0.1:${spindlePort}`;

const scratch = mkdtempSync(path.join(tmpdir(), "spindle-bench-"));
try {
  await waitForHttp(bareUrl, bare);
  await waitForHttp(`${spindleUrl}/health`, spindle);

  const graphql = async (query: string, variables: Record<string, unknown>, authorization?: string) => {
    const res = await fetch(`${spindleUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: any; errors?: unknown[] };
    if (res.status !== 200 || body.errors) throw new Error(`${query.slice(0, 60)}...: ${res.status} ${JSON.stringify(body.errors)}`);
    return body.data;
  };
  const { login } = await graphql(`mutation($input: LoginInput!) { login(input: $input) { accessToken } }`, {
    input: { login: user.email, password },
  });
  const bearer = `Bearer ${login.accessToken}`;

  const STATUS = `query WorkerStatus($id: ID!) { worker(id: $id) { status tickCount errorCount lastTickAt } }`;
  const DASHBOARD = `query Dashboard($id: ID!) { workspace(id: $id) { workers(first: 100) { edges { node {
    name status machine { name status } transitions(first: 5) { edges { node { from to action at } } } } } } } }`;
  const HEARTBEAT = `mutation Heartbeat { machineHeartbeat(input: { cpuPercent: 12.5, memoryPercent: 40, diskPercent: 61 }) { leaseSeconds } }`;
  const CLAIM = `mutation Claim { claimTasks(input: { limit: 1 }) { id attempt } }`;

  // Every kind answers correctly once before anything is timed.
  if (!process.env.BENCH_SKIP_DASHBOARD) {
    const dashboard = await graphql(DASHBOARD, { id: workspace.id }, bearer);
    if (dashboard.workspace.workers.edges.length !== WORKERS) throw new Error("the dashboard did not list every worker");
  }
  await graphql(HEARTBEAT, {}, `Bearer ${credentials[0]}`);
  const { claimTasks } = await graphql(CLAIM, {}, `Bearer ${credentials[0]}`);
  if (claimTasks.length !== 1) throw new Error("a claim found no task");

  interface Kind {
    url: string;
    body: string;
    /** Authorization headers, cycled request by request. */
    auth: string[];
  }
  const body = (query: string, variables: Record<string, unknown> = {}) => JSON.stringify({ query, variables });
  const kinds: Record<string, Kind> = {
    "bare node:http + pg, status by id": { url: bareUrl, body: body(STATUS, { id: workerIds[0] }), auth: [] },
    "Spindle worker status (bearer token)": { url: `${spindleUrl}/graphql`, body: body(STATUS, { id: workerIds[0] }), auth: [bearer] },
    "Spindle { __typename } (bearer token)": { url: `${spindleUrl}/graphql`, body: body("{ __typename }"), auth: [bearer] },
    "Spindle { __typename } (anonymous)": { url: `${spindleUrl}/graphql`, body: body("{ __typename }"), auth: [] },
    ...(process.env.BENCH_SKIP_DASHBOARD ? {} : { "Spindle dashboard, 100 workers + machine + 5 transitions": { url: `${spindleUrl}/graphql`, body: body(DASHBOARD, { id: workspace.id }), auth: [bearer] } }),
    [`Spindle machine heartbeats (${MACHINES} machines)`]: { url: `${spindleUrl}/graphql`, body: body(HEARTBEAT), auth: credentials.map((c) => `Bearer ${c}`) },
    [`Spindle task claims, 1 per call (${MACHINES} machines)`]: { url: `${spindleUrl}/graphql`, body: body(CLAIM), auth: credentials.map((c) => `Bearer ${c}`) },
  };

  function wrkScript(kind: Kind): string {
    const file = path.join(scratch, `${Object.keys(kinds).indexOf(Object.keys(kinds).find((k) => kinds[k] === kind)!)}.lua`);
    const lua = (s: string) => JSON.stringify(s); // a JSON string is a valid Lua string literal here (no \u escapes in our bodies)
    writeFileSync(
      file,
      `local auth = { ${kind.auth.map(lua).join(", ")} }
local body = ${lua(kind.body)}
local i = 0
bad = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function request()
  i = i + 1
  local headers = { ["content-type"] = "application/json" }
  if #auth > 0 then headers["authorization"] = auth[(i % #auth) + 1] end
  return wrk.format("POST", nil, headers, body)
end
function response(status, headers, responseBody)
  if status ~= 200 or string.find(responseBody, '"errors"', 1, true) then
    bad = bad + 1
    if bad == 1 then io.stderr:write("first bad answer: " .. status .. " " .. string.sub(responseBody, 1, 300) .. "\\n") end
  end
end
function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("bad") end
  io.write(string.format("BENCH requests=%d failed=%d p50=%.2f p99=%.2f\\n", summary.requests, failed, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
`,
    );
    return file;
  }

  function runWrk(kind: Kind) {
    const out = execFileSync("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "-s", wrkScript(kind), kind.url], { encoding: "utf8" });
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    const m = /BENCH requests=(\d+) failed=(\d+) p50=([\d.]+) p99=([\d.]+)/.exec(out);
    if (!m) throw new Error(`unreadable wrk output:\n${out}`);
    if (Number(m[2]) > 0) throw new Error(`${m[2]} of ${m[1]} answers were not 200 or carried errors`);
    return { rps, p50: Number(m[3]), p99: Number(m[4]) };
  }

  // Warm-up: JIT, pools, caches.
  for (const kind of Object.values(kinds)) {
    execFileSync("wrk", ["-t1", `-c${CONNECTIONS}`, "-d2s", "-s", wrkScript(kind), kind.url], { encoding: "utf8" });
  }
  const results: Record<string, { rps: number; p50: number; p99: number }[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(kinds);
    for (const name of round % 2 ? names.reverse() : names) (results[name] ??= []).push(runWrk(kinds[name]!));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = Object.fromEntries(
    Object.entries(results).map(([name, runs]) => [name, { rps: median(runs.map((r) => r.rps)), p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)) }]),
  );
  const reference = summary["bare node:http + pg, status by id"]!.rps;
  console.log(`request path, PostgreSQL${process.env.REDIS_URL ? " + Redis" : ""}, wrk -t1 -c${CONNECTIONS}, ${ROUNDS} alternating rounds of ${SECONDS} s, median round`);
  console.log(`Spindle: ${existsSync(compiled) ? "compiled (dist/)" : "tsx"}, NODE_ENV=production`);
  for (const [name, { rps, p50, p99 }] of Object.entries(summary)) {
    console.log(`  ${name.padEnd(58)} ${rps.toFixed(0).padStart(7)} req/s  p50 ${p50.toFixed(1)} ms  p99 ${p99.toFixed(1)} ms  (${((rps / reference) * 100).toFixed(1)} % of bare)`);
  }
} finally {
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
          child.once("exit", () => resolve(void clearTimeout(kill)));
          child.kill("SIGTERM");
        });
  await Promise.all([exited(spindle), exited(bare)]);
  await db.close();
  await fresh.drop();
}
