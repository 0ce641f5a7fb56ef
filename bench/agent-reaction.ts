// How fast a running `spindle agent` reacts to what the server assigns (issue 11: "the agent reacts
// within a second"). One server (in this process, on the embedded database, or on PostgreSQL + Redis
// with DATABASE_URL/REDIS_URL set) and one agent process; each round:
//   - task: createTask -> the task is RUNNING on the agent (stream item, claim, startTask);
//   - worker: deployWorker (a process worker) -> RUNNING (stream item, process up for 1 s, report);
//   - cancel: cancelTask of a running `sleep` -> its process is gone (stream item, TERM).
// The reference, measured in the same run, is one createTask round trip from this process.
//   npx tsx bench/agent-reaction.ts            (ROUNDS=20 by default)
import { performance } from "node:perf_hooks";
import { CancelTaskDocument, CreateEnrollmentTokenDocument, CreateTaskDocument, DeployWorkerDocument, StopWorkerDocument } from "../test/generated/graphql.js";
import { eventually, processesRunning, startAgent, stopAllAgents } from "../test/helpers/agent.js";
import { ownedWorkspace } from "../test/helpers/factories.js";
import { backend, ok, startTestServer } from "../test/helpers/server.js";

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const server = await startTestServer();
const prisma = server.db.prisma;
const { owner, workspaceId } = await ownedWorkspace(server);
const as = { token: owner.accessToken };
const enroll = ok(await server.execute(CreateEnrollmentTokenDocument, { input: { workspaceId, name: "bench" } }, as)).createEnrollmentToken.token!;
const agent = startAgent({ args: ["--server", server.url, "--enroll", enroll, "--kill-grace", "2", "--max-tasks", "4", "--log-level", process.env.AGENT_LOG_LEVEL ?? "info"] });
process.on("uncaughtException", (error) => {
  console.error(`${error.message}\n--- the agent's output:\n${agent.output().slice(-6000)}`);
  process.exit(1);
});
await agent.waitFor(/assignment stream connected/, 60_000);

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const results: Record<string, number[]> = { reference: [], task: [], worker: [], cancel: [] };
const poll = { everyMs: 5 };

for (let round = 0; round < ROUNDS; round++) {
  let started = performance.now();
  const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: `t${round}`, input: { command: "true" } } }, as)).createTask;
  results.reference!.push(performance.now() - started);
  await eventually(async () => ["RUNNING", "SUCCEEDED"].includes((await prisma.task.findUniqueOrThrow({ where: { id: task.id } })).status), "task", 20_000, poll.everyMs);
  results.task!.push(performance.now() - started);

  started = performance.now();
  const worker = ok(await server.execute(DeployWorkerDocument, { input: { workspaceId, kind: "CONTAINER", name: `w${round}`, command: "exec sleep 300" } }, as)).deployWorker;
  await eventually(async () => (await prisma.worker.findUniqueOrThrow({ where: { id: worker.id } })).status === "RUNNING", "worker", 20_000, poll.everyMs);
  results.worker!.push(performance.now() - started);
  ok(await server.execute(StopWorkerDocument, { id: worker.id }, as));

  const marker = String(50_000 + round);
  const long = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: `c${round}`, input: { command: `exec sleep ${marker}` } } }, as)).createTask;
  await eventually(() => processesRunning(["sleep", marker]).length === 1, "long task", 20_000, poll.everyMs);
  started = performance.now();
  ok(await server.execute(CancelTaskDocument, { id: long.id }, as));
  await eventually(() => processesRunning(["sleep", marker]).length === 0, "cancelled process gone", 20_000, poll.everyMs);
  results.cancel!.push(performance.now() - started);
}

console.log(`# agent reaction, ${backend}, ${ROUNDS} rounds (ms; the worker waits 1 s up by design)`);
console.log("| measure | p50 | p95 | max | p50 / reference |");
console.log("|---|---|---|---|---|");
const reference = percentile(results.reference!, 50);
for (const [name, values] of Object.entries(results)) {
  const p50 = percentile(values, 50);
  console.log(`| ${name} | ${p50.toFixed(0)} | ${percentile(values, 95).toFixed(0)} | ${Math.max(...values).toFixed(0)} | ${(p50 / reference).toFixed(1)} |`);
}
await stopAllAgents();
await server.close();
