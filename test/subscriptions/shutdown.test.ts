// Graceful shutdown: live streams end with a clean completion (SSE `complete`, WebSocket close
// 1001) so clients reconnect elsewhere, and stop() does not sit out the grace period for them.
import { afterEach, describe, expect, it } from "vitest";
import { AccountEventsDocument, UpdateProfileDocument } from "../generated/graphql.js";
import { signedInUser } from "../helpers/factories.js";
import { firstDelivery, sseSubscribe, tracker, within, wsClient, wsSubscribe } from "../helpers/live.js";
import { backend, ok, startTestServer } from "../helpers/server.js";

const t = tracker();
afterEach(() => t.closeAll());

describe(`shutdown (${backend})`, () => {
  it("completes SSE streams, closes WebSockets with 1001, and stops before the grace period ends", async () => {
    const graceSeconds = 30;
    const server = await startTestServer({ SPINDLE_SHUTDOWN_GRACE: String(graceSeconds) });
    let stopped = false;
    try {
      const user = await signedInUser(server);
      const touch = () => server.execute(UpdateProfileDocument, { input: { displayName: "x" } }, { token: user.accessToken }).then(ok);

      const sse = await sseSubscribe(server, t, AccountEventsDocument, { token: user.accessToken });
      await firstDelivery(sse.events, touch);
      const client = wsClient(server, t, { authorization: `Bearer ${user.accessToken}` });
      const ws = wsSubscribe(client, t, AccountEventsDocument);
      await firstDelivery(ws, touch);

      const started = Date.now();
      await within(server.app.stop(), (graceSeconds - 5) * 1000, "stop()");
      stopped = true;
      expect(Date.now() - started).toBeLessThan((graceSeconds - 5) * 1000);

      await sse.events.ended(5_000);
      expect(sse.events.pending.map((e) => e.event)).toContain("complete");
      await ws.ended(5_000);
      expect(client.closes.map((c) => c.code)).toContain(1001);
    } finally {
      if (stopped) {
        await server.pubsub.close();
        await server.db.close();
      } else {
        await server.close();
      }
    }
  });
});
