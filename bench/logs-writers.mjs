// The writers of bench/logs.ts's ingestion run, in a worker thread with its own event loop (as a
// fleet of machines would be other processes): one lane per source, each sending its batches one
// after another through `appendLogs` over keep-alive HTTP, with a machine's credential. Answers the
// wall-clock time, and fails on any answer that is not the batch stored with its cursors.
import { parentPort } from "node:worker_threads";

const mutation = "mutation($input: AppendLogsInput!) { appendLogs(input: $input) { firstCursor lastCursor count replayed } }";

parentPort.on("message", async ({ url, token, sources, batches, lines, sequencePrefix }) => {
  const started = performance.now();
  let stored = 0;
  const lane = async (sourceId, targetUrl) => {
    for (let n = 0; n < batches; n++) {
      const body = JSON.stringify({
        query: mutation,
        variables: { input: { source: { type: "WORKER", id: sourceId }, sequence: `${sequencePrefix}-${n}`, lines } },
      });
      // A keep-alive connection the server closed just as it was reused fails the request; the
      // retry with the same sequence is stored once (what a machine would do).
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await fetch(targetUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body });
          const answer = await res.json();
          const appended = answer.data?.appendLogs;
          if (!appended || appended.count !== lines.length) throw new Error(`appendLogs answered ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
          stored += appended.count;
          break;
        } catch (error) {
          if (attempt >= 3 || !String(error?.cause ?? error).includes("closed")) throw error;
        }
      }
    }
  };
  try {
    await Promise.all(sources.map((sourceId, i) => lane(sourceId, url[i % url.length])));
    parentPort.postMessage({ ms: performance.now() - started, stored });
  } catch (error) {
    parentPort.postMessage({ error: String(error?.stack ?? error) });
  }
});
