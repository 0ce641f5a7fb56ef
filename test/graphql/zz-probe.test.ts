import { afterAll, beforeAll, it } from "vitest";
import { MeDocument, RefreshTokenDocument } from "../generated/graphql.js";
import { signedInUser } from "../helpers/factories.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(() => server?.close());
it("probe", async () => {
  for (let i = 0; i < 3; i++) {
    const user = await signedInUser(server);
    const results = await Promise.all(Array.from({ length: 5 }, () => server.execute(RefreshTokenDocument, { input: { refreshToken: user.refreshToken } })));
    console.log(results.map((r) => r.errors ? `${r.status} ${r.errors[0]!.extensions?.reason ?? r.errors[0]!.message}` : "ok"));
    const win = results.find((r) => !r.errors)!.data!.refreshToken;
    const m = await server.execute(MeDocument, {}, { token: win.accessToken });
    console.log("winner access:", m.errors ? m.errors[0]!.message : "works");
    const r2 = await server.execute(RefreshTokenDocument, { input: { refreshToken: win.refreshToken } });
    console.log("winner refresh:", r2.errors ? r2.errors[0]!.message : "works");
  }
});
