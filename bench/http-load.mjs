// Load generator for bench/rest-overhead.ts, in a worker thread with its own event loop: sends one
// request `count` times, `concurrency` at a time, over keep-alive connections, and answers the
// wall-clock time and how many answers were not 200.
import { parentPort } from "node:worker_threads";

parentPort.on("message", async ({ url, init, count, concurrency }) => {
  let sent = 0;
  let failed = 0;
  const started = performance.now();
  const lane = async () => {
    while (sent < count) {
      sent++;
      const res = await fetch(url, init);
      await res.arrayBuffer();
      if (res.status !== 200) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  parentPort.postMessage({ ms: performance.now() - started, failed });
});
