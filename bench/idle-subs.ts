// Server memory held by idle `events` subscriptions over graphql-ws, up to 10,000.
//
//   npx tsx bench/idle-subs.ts                     # embedded: PGlite in a data folder, in-process pub/sub
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
//     npx tsx bench/idle-subs.ts                   # PostgreSQL + Redis (a fresh database, dropped at the end)
//
// The server is the compiled build (`node dist/main.js`, NODE_ENV=production) in its own process, with
// the V8 inspector open so this script can run full GCs in it and read its process.memoryUsage().
// The subscribers are another process (bench/idle-subs-client.mjs): by default one WebSocket per
// subscription (BENCH_PER_SOCKET=1), the worst case and the realistic one (a dashboard tab opens one
// socket for its one stream), on `events` of one workspace (BENCH_WORKSPACES=n spreads them over n:
// streams of one workspace share their reads, so n > 1 shows what idle streams cost when they cannot).
// They are opened in steps
// (BENCH_STEPS, default 2000,5000,10000); at each step, once the server's spindle_active_subscriptions
// gauge counts them all and BENCH_SETTLE_S seconds passed idle, two full GCs and then:
//   RSS       the server process's resident memory (/proc), what "server memory" means here
//   heap      V8's used heap; external + array buffers (sockets' buffers, WASM memory)
// and the server's CPU use during the idle wait (an idle subscription should cost none).
// Per subscription = (step - baseline) / subscriptions. The baseline is taken after a warm-up round
// of 200 subscriptions opened and closed, so lazily built code paths are not counted as per-subscription.
// Then one event is published and every subscription must receive it (the subscriptions are live,
// not dead sockets), and after all are closed memory is measured again (what is not given back).
// BENCH_HEAP_SNAPSHOT=<dir> writes heap snapshots at the baseline and the last step (for finding where
// the heap goes; writing one inflates RSS, so that run's RSS figures are not comparable).
// Not a test: it prints figures for BENCHMARKS.md.
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { ADMIN, buildIfStale, cpuSecondsOf, fdsOf, freshBackend, mb, rssOf, root, startSpindle, type SpindleProcess } from "../test/helpers/server-process.js";

const STEPS = (process.env.BENCH_STEPS ?? "2000,5000,10000").split(",").map(Number);
const PER_SOCKET = Number(process.env.BENCH_PER_SOCKET ?? 1);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_S ?? 10) * 1000;
const WORKSPACES = Number(process.env.BENCH_WORKSPACES ?? 1);
const SNAPSHOTS = process.env.BENCH_HEAP_SNAPSHOT;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

buildIfStale();
const backend = await freshBackend();
let server: SpindleProcess | undefined;
try {
  const top = Math.max(...STEPS);
  console.log(`# idle subscriptions: ${backend.kind}, up to ${top}, ${PER_SOCKET} per WebSocket, over ${WORKSPACES} workspace(s), compiled server`);
  server = await startSpindle({ runtime: "compiled", backend, inspect: true });
  const { url } = server;
  const inspector = server.inspector!;
  const pid = server.serverPid;

  const graphql = async (query: string, variables: object, token?: string) => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: any; errors?: unknown };
    if (!body.data) throw new Error(`${query.slice(0, 60)}: ${JSON.stringify(body.errors)}`);
    return body.data;
  };
  // A token that outlives the run: an idle stream ends when its credential expires.
  const { login } = await graphql("mutation($i: LoginInput!) { login(input: $i) { accessToken } }", {
    i: { login: ADMIN.email, password: ADMIN.password, accessTokenTtl: 4 * 3600 },
  });
  const token: string = login.accessToken;
  const workspaceIds: string[] = [];
  for (let i = 0; i < WORKSPACES; i++) {
    const { createWorkspace } = await graphql("mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }", { i: { name: `idle-subs-${i}` } }, token);
    workspaceIds.push(createWorkspace.id);
  }

  const gauges = async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? NaN);
    return { subscriptions: gauge("spindle_active_subscriptions"), sockets: gauge("spindle_websocket_connections") };
  };
  const waitForSubscriptions = async (count: number) => {
    const deadline = Date.now() + 10 * 60_000;
    for (;;) {
      const now = await gauges();
      if (now.subscriptions === count) return;
      if (Date.now() > deadline) throw new Error(`the server counts ${now.subscriptions} subscriptions, expected ${count}`);
      await sleep(250);
    }
  };
  const measure = async (): Promise<Memory> => {
    await inspector.collectGarbage();
    await sleep(500);
    await inspector.collectGarbage();
    const usage = await inspector.memoryUsage();
    return { rss: rssOf(pid).rss, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers };
  };

  const startClient = () => {
    const child = fork(path.join(root, "bench/idle-subs-client.mjs"), { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.send({ type: "start", job: { url: `${url.replace(/^http/, "ws")}/graphql`, token, workspaceIds, perSocket: PER_SOCKET, concurrency: CONCURRENCY } });
    return child;
  };
  const ask = <T extends Record<string, any>>(child: ChildProcess, message: object, answer: string) =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the subscriber process exited (${code})`));
      const onMessage = (reply: any) => {
        if (reply.type !== answer) return;
        child.off("message", onMessage).off("exit", onExit);
        resolve(reply);
      };
      child.on("message", onMessage).once("exit", onExit);
      child.send(message);
    });

  // Warm-up: the first subscriptions build what every later one shares (schema paths, pools, timers).
  const warm = startClient();
  await ask(warm, { type: "open", total: 200 }, "opened");
  await waitForSubscriptions(200);
  await ask(warm, { type: "close" }, "closed");
  await waitForSubscriptions(0);
  await sleep(2_000);

  const baseline = await measure();
  const row = (label: string, m: Memory, count: number) => {
    const per = (value: number) => (count > 0 ? `${(value / count / 1024).toFixed(1)} KB` : "");
    console.log(
      `| ${label} | ${mb(m.rss)} | ${mb(m.heapUsed)} | ${mb(m.external)} (${mb(m.arrayBuffers)}) | ` +
        `${per(m.rss - baseline.rss)} | ${per(m.heapUsed - baseline.heapUsed)} |`,
    );
  };
  if (SNAPSHOTS) {
    console.log("(heap snapshots on: writing one grows the server's RSS, so the RSS columns of this run mean nothing)");
    mkdirSync(SNAPSHOTS, { recursive: true });
    await inspector.heapSnapshot(path.join(SNAPSHOTS, `${backend.kind}-0.heapsnapshot`));
  }
  console.log("| subscriptions | server RSS, MB | heap used, MB | external (array buffers), MB | RSS per subscription | heap per subscription |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  row("0 (baseline)", baseline, 0);

  const client = startClient();
  let opened: Record<string, any> = {};
  for (const step of STEPS) {
    const started = performance.now();
    opened = await ask(client, { type: "open", total: step }, "opened");
    await waitForSubscriptions(step);
    const openSeconds = (performance.now() - started) / 1000;
    if (opened.failures > 0) throw new Error(`${opened.failures} subscriber failures, the last: ${opened.lastFailure}`);
    const idleFrom = { cpu: cpuSecondsOf(pid), at: performance.now() };
    await sleep(SETTLE_MS);
    const idleCpu = (cpuSecondsOf(pid) - idleFrom.cpu) / ((performance.now() - idleFrom.at) / 1000);
    const memory = await measure();
    const { sockets } = await gauges();
    row(`${step} (${sockets} sockets)`, memory, step);
    const serverFds = fdsOf(pid);
    const clientFds = fdsOf(client.pid!);
    console.log(
      `    opened in ${openSeconds.toFixed(1)} s; server CPU while idle ${(idleCpu * 100).toFixed(0)} % of a core; ` +
        `fds: server ${serverFds.open}/${serverFds.limit}, ` +
        `subscriber process ${clientFds.open}/${clientFds.limit} (RSS ${mb(opened.rss)} MB)`,
    );
  }
  if (SNAPSHOTS) await inspector.heapSnapshot(path.join(SNAPSHOTS, `${backend.kind}-${top}.heapsnapshot`));

  // Live, not only open: one event in each workspace reaches each of its subscriptions, once.
  const published = performance.now();
  for (const workspaceId of workspaceIds) {
    await graphql(
      "mutation($i: PublishWorkspaceEventInput!) { publishWorkspaceEvent(input: $i) { cursor } }",
      { i: { workspaceId, type: "notification", data: { bench: "idle-subs" } } },
      token,
    );
  }
  let received = 0;
  while (performance.now() - published < 180_000) {
    received = (await ask<{ items: number }>(client, { type: "received" }, "received")).items;
    if (received >= top) break;
    await sleep(250);
  }
  const seconds = ((performance.now() - published) / 1000).toFixed(1);
  console.log(`\none event in each of ${WORKSPACES} workspace(s): ${received} items received for ${top} subscriptions in ${seconds} s`);
  await sleep(SETTLE_MS);
  row(`${top}, after the event`, await measure(), top);

  await ask(client, { type: "close" }, "closed");
  await waitForSubscriptions(0);
  await sleep(SETTLE_MS);
  row("0 (all closed)", await measure(), 0);
} finally {
  await server?.stop();
  await backend.drop();
}
