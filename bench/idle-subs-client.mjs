// The subscribers of bench/idle-subs.ts, in their own process (forked, IPC to the benchmark): graphql-ws
// connections with `perSocket` `events` subscriptions each (round-robin over the workspaces), opened up
// to a total the benchmark asks for, at most `concurrency` connecting at once. They then sit idle (the
// server pings them every 12 s) and count what they receive. Plain JavaScript: it only needs graphql-ws and ws.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const query = "subscription($w: ID!) { events(workspaceId: $w) { cursor type } }";
let job;
const clients = [];
let subscriptions = 0;
let failures = 0;
let lastFailure = "";
let received = 0;

function fail(what) {
  failures++;
  lastFailure = what;
}

function openSocket() {
  return new Promise((resolve) => {
    const client = createClient({
      url: job.url,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${job.token}` },
      lazy: false,
      retryAttempts: 0,
      on: {
        connected: () => resolve(),
        closed: (event) => {
          if (!job.closing) fail(`socket closed: ${event?.code} ${event?.reason}`);
          resolve();
        },
        error: (error) => fail(`socket error: ${error?.message ?? error}`),
      },
    });
    clients.push(client);
    for (let i = 0; i < job.perSocket; i++) {
      const workspaceId = job.workspaceIds[subscriptions++ % job.workspaceIds.length];
      client.subscribe(
        { query, variables: { w: workspaceId } },
        {
          next: (result) => {
            if (!result.data?.events) return fail(`error result: ${JSON.stringify(result.errors)}`);
            received++;
          },
          error: (error) => fail(`subscription error: ${JSON.stringify(error)}`),
          complete: () => {
            if (!job.closing) fail("subscription completed");
          },
        },
      );
    }
  });
}

async function openUpTo(total) {
  let next = subscriptions;
  const worker = async () => {
    while (next < total) {
      next += job.perSocket;
      await openSocket();
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, worker));
}

const report = (type, extra = {}) =>
  process.send({ type, sockets: clients.length, subscriptions, failures, lastFailure, rss: process.memoryUsage.rss(), ...extra });

process.on("message", async (message) => {
  if (message.type === "start") job = message.job;
  if (message.type === "open") {
    await openUpTo(message.total);
    report("opened");
  }
  if (message.type === "received") report("received", { items: received });
  if (message.type === "close") {
    job.closing = true;
    await Promise.all(clients.map((client) => client.dispose()));
    report("closed");
    process.exit(0);
  }
});
