// The subscribers of bench/logs.ts, in a worker thread: graphql-ws clients (10 subscriptions per
// socket) that record, for each line received, the time since its append was sent (the send time
// is the first word of the message). Plain JavaScript: worker threads do not inherit tsx.
import { parentPort, workerData } from "node:worker_threads";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const job = workerData;
const now = () => performance.timeOrigin + performance.now();
const latencies = [];
let lines = 0;
let collecting = false;
let ready = 0;
const perSocket = 10;
const clients = [];
const query = "subscription($s: LogSourceInput!, $a: String) { logs(source: $s, after: $a) { cursor lines { message } } }";

for (let i = 0; i < job.count; i += perSocket) {
  const replica = (i / perSocket) % job.urls.length;
  const client = createClient({
    url: job.urls[replica],
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${job.tokens[replica]}` },
    retryAttempts: 0,
    lazy: false,
  });
  clients.push(client);
  for (let j = i; j < Math.min(i + perSocket, job.count); j++) {
    let first = true;
    client.subscribe(
      { query, variables: { s: { type: "WORKER", id: job.sourceId }, a: job.after } },
      {
        next: (result) => {
          const received = now();
          const item = result.data?.logs;
          if (!item) {
            parentPort.postMessage({ type: "error", error: JSON.stringify(result.errors) });
            return;
          }
          if (first && item.lines.some((l) => l.message === "warm-up")) {
            first = false;
            if (++ready === job.count) parentPort.postMessage({ type: "ready" });
          }
          if (!collecting) return;
          for (const line of item.lines) {
            const sent = Number(line.message.split(" ")[0]);
            if (sent > 0) latencies.push(received - sent);
            lines++;
          }
        },
        error: (error) => parentPort.postMessage({ type: "error", error: String(error?.message ?? JSON.stringify(error)) }),
        complete: () => {},
      },
    );
  }
}

parentPort.on("message", async (message) => {
  if (message.type === "collect") collecting = true;
  if (message.type === "report") {
    parentPort.postMessage({ type: "report", latencies, lines });
    await Promise.all(clients.map((c) => c.dispose()));
  }
});
