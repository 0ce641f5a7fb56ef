// The subscribers of bench/logs.ts, in a worker thread: graphql-ws clients (10 subscriptions per
// socket) that record, for each line received, the time since its append was sent (the send time
// is the first word of the message) and its cursor, so the report can say how many deliveries were
// lost, duplicated or out of order, and how many items carried them (fewer items than appends: the
// server merged lines for a subscriber that was still busy). Plain JavaScript: worker threads do
// not inherit tsx.
import { parentPort, workerData } from "node:worker_threads";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const job = workerData;
const now = () => performance.timeOrigin + performance.now();
const perSocket = 10;
const clients = [];
const query = "subscription($s: LogSourceInput!, $a: String) { logs(source: $s, after: $a) { cursor lines { cursor message } } }";
/** Per subscriber: the cursors of timed lines received, in arrival order, and their latencies. */
const subscribers = [];
let ready = 0;
let errors = 0;

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
    const me = { cursors: [], latencies: [], items: 0, warm: false };
    subscribers.push(me);
    client.subscribe(
      { query, variables: { s: { type: "WORKER", id: job.sourceId }, a: job.after } },
      {
        next: (result) => {
          const received = now();
          const item = result.data?.logs;
          if (!item) {
            errors++;
            parentPort.postMessage({ type: "error", error: JSON.stringify(result.errors) });
            return;
          }
          let timed = false;
          for (const line of item.lines) {
            if (line.message === "warm-up") {
              if (!me.warm) {
                me.warm = true;
                if (++ready === job.count) parentPort.postMessage({ type: "ready" });
              }
              continue;
            }
            const sent = Number(line.message.split(" ")[0]);
            if (!(sent > 0)) continue;
            me.cursors.push(Number(line.cursor));
            me.latencies.push(received - sent);
            timed = true;
          }
          if (timed) me.items++;
        },
        error: (error) => {
          errors++;
          parentPort.postMessage({ type: "error", error: String(error?.message ?? JSON.stringify(error)) });
        },
        complete: () => {},
      },
    );
  }
}

/** Deliveries of the timed lines with cursors first..last: every subscriber should get each once, in order. */
function report(first, last) {
  const expected = last - first + 1;
  let received = 0;
  let lost = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let items = 0;
  const latencies = [];
  for (const me of subscribers) {
    const seen = new Set();
    let previous = -Infinity;
    me.cursors.forEach((cursor, i) => {
      if (cursor < first || cursor > last) return;
      received++;
      if (seen.has(cursor)) duplicated++;
      else seen.add(cursor);
      if (cursor <= previous) outOfOrder++;
      previous = cursor;
      latencies.push(me.latencies[i]);
    });
    lost += expected - seen.size;
    items += me.items;
  }
  return { expected: expected * subscribers.length, received, lost, duplicated, outOfOrder, errors, items, latencies };
}

parentPort.on("message", async (message) => {
  if (message.type === "report") {
    parentPort.postMessage({ type: "report", ...report(message.first, message.last) });
    await Promise.all(clients.map((c) => c.dispose()));
  }
});
