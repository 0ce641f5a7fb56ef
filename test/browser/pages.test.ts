// The browser pages work on a machine without internet: GraphiQL at /graphql and the API docs at
// /api/docs, opened in a real headless Chromium whose every request must go to the test server.
// Their static assets are an explicit allow-list with long cache headers.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DOCS_PAGE_PATHS } from "../../src/http/docs-page.js";
import { createUser } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

const CHROMIUM = "/usr/bin/chromium";
// On CI a missing browser fails the suite (.ci/run installs it); elsewhere it may only be skipped.
const skipWithoutChromium = !existsSync(CHROMIUM) && !process.env.CI;
if (skipWithoutChromium) console.warn(`Skipping the browser tests: no ${CHROMIUM} (apt-get install -y chromium; on CI this fails instead)`);

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** A request with its path sent exactly as written (fetch would resolve `..` before sending). */
function rawGet(path: string, method = "GET"): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject).end();
  });
}

describe(`docs page assets over HTTP (${backend})`, () => {
  const assets = DOCS_PAGE_PATHS.filter((path) => path !== "/api/docs");

  it("serves the page uncached with a policy that allows this server only", async () => {
    const res = await rawGet("/api/docs");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.headers["content-security-policy"]).toContain("connect-src 'self'");
    for (const asset of assets) expect(res.body).toContain(asset);
  });

  it("serves each listed asset with its content type and a year-long immutable cache; HEAD sends no body", async () => {
    const types = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png" };
    expect(assets.map((path) => path.slice(path.lastIndexOf("/") + 1)).sort()).toEqual(["favicon-32x32.png", "init.js", "swagger-ui-bundle.js", "swagger-ui.css"]);
    for (const path of assets) {
      const res = await rawGet(path);
      expect(res.status, path).toBe(200);
      expect(res.headers["content-type"], path).toBe(types[path.slice(path.lastIndexOf(".")) as keyof typeof types]);
      expect(res.headers["cache-control"], path).toBe("public, max-age=31536000, immutable");
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
      expect(Number(res.headers["content-length"]), path).toBeGreaterThan(0);
      const head = await rawGet(path, "HEAD");
      expect([head.status, head.headers["content-length"], head.body]).toEqual([200, res.headers["content-length"], ""]);
    }
  });

  it("answers 404 for any other file, traversal or version, and for other methods", async () => {
    const assetDir = assets[0]!.slice(0, assets[0]!.lastIndexOf("/"));
    const attempts = [
      `${assetDir}/index.html`,
      `${assetDir}/swagger-ui-bundle.js.map`,
      `${assetDir}/package.json`,
      `${assetDir}/../../../../package.json`,
      `${assetDir}/%2e%2e/%2e%2e/%2e%2e/package.json`,
      `${assetDir}/..%2f..%2f..%2f..%2fpackage.json`,
      `/api/docs/assets/000000000000/swagger-ui.css`,
      `/api/docs/swagger-ui.css`,
      `/api/docs/../../etc/passwd`,
      `/api/docs/`,
    ];
    for (const path of attempts) expect((await rawGet(path)).status, path).toBe(404);
    expect((await rawGet("/api/docs", "POST")).status).toBe(404);
  });
});

describe.skipIf(skipWithoutChromium)(`pages in headless Chromium (${backend})`, () => {
  let profile: string;
  let browser: BrowserContext;
  /** Every URL the browser asked for (pages, scripts, workers, XHR, WebSockets). */
  const requested: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium (.ci/run does this)`);
    profile = await mkdtemp(join(tmpdir(), "spindle-chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // No host name resolves: only the server's IP address (127.0.0.1) is reachable at all.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      ],
    });
    // GraphiQL is one 9 MB page; on two busy cores it can take tens of seconds to load.
    browser.setDefaultTimeout(90_000);
    browser.on("request", (req) => requested.push(req.url()));
    await browser.route("**/*", (route) => (isLocal(route.request().url()) ? route.continue() : route.abort("blockedbyclient")));
  });
  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  function isLocal(url: string): boolean {
    if (url.startsWith("data:")) return true;
    // blob: URLs (GraphiQL's editor workers) carry the origin that made them.
    return new URL(url.startsWith("blob:") ? url.slice("blob:".length) : url).hostname === "127.0.0.1";
  }

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    page.on("websocket", (ws) => requested.push(ws.url()));
    page.on("pageerror", (error) => problems.push(`${path}: ${error.message}`));
    page.on("console", (message) => {
      if (message.text().startsWith("Refused to")) problems.push(`${path}: ${message.text()}`);
    });
    await page.goto(`${server.url}${path}`);
    return page;
  }

  /** Replaces the query editor's text and presses the run button. */
  async function runQuery(page: Page, query: string) {
    await page.locator(".graphiql-query-editor .monaco-editor").click();
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.insertText(query);
    // The editor closes the first brace itself: drop whatever it added after the query.
    await page.keyboard.press("ControlOrMeta+Shift+End");
    await page.keyboard.press("Delete");
    await page.locator(".graphiql-execute-button").click();
  }

  /** Runs `query` and waits for `expected` in the result pane; the pane's text (the editor shows spaces as U+00A0). */
  async function run(page: Page, query: string, expected: string): Promise<string> {
    const pane = ".graphiql-response .view-lines";
    await runQuery(page, query);
    await page.waitForFunction(([selector, wanted]) => document.querySelector(selector!)?.textContent?.replace(/\u00a0/g, " ").includes(wanted!), [pane, expected]);
    return (await page.locator(pane).textContent())!.replace(/\u00a0/g, " ");
  }

  /**
   * Every "METHOD path" Swagger UI shows. From 150 entries on it renders only those in view, so this
   * scrolls through the page, again while fewer than `expected` were seen (at most three times).
   */
  async function renderedOperations(page: Page, expected: number): Promise<string[]> {
    const seen = new Set<string>();
    for (let pass = 0; pass < 3 && seen.size < expected; pass++) {
      const shown = await page.evaluate(async () => {
        const found: string[] = [];
        for (let y = 0; y <= document.documentElement.scrollHeight; y += window.innerHeight / 2) {
          window.scrollTo(0, y);
          await new Promise((rendered) => requestAnimationFrame(() => requestAnimationFrame(rendered)));
          for (const summary of document.querySelectorAll(".opblock-summary")) {
            found.push(`${summary.querySelector(".opblock-summary-method")?.textContent} ${summary.querySelector(".opblock-summary-path")?.getAttribute("data-path")}`);
          }
        }
        return found;
      });
      for (const operation of shown) seen.add(operation);
    }
    return [...seen];
  }

  it("GraphiQL renders from this server alone, runs a query, signs in with login and subscribes over WebSocket", { timeout: 180_000 }, async () => {
    const user = await createUser(server);
    const page = await open("/graphql");
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor();
    expect(await page.title()).toBe("Spindle");

    expect(await run(page, "{ __typename }", '"__typename": "Query"')).toContain('"data"');

    await run(page, `mutation { login(input: { login: "${user.email}", password: "${user.password}" }) { accessTokenExpiresAt } }`, '"accessTokenExpiresAt"');
    // GraphiQL sends no token: the page is signed in by the session cookie that login set.
    expect(await run(page, "{ me { username } }", '"me": {')).toContain(`"username": "${user.username}"`);

    // The WebSocket is accepted (connection_ack) only for a signed-in browser: the cookie again.
    const acknowledged = new Promise<string>((resolve) =>
      page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => String(payload).includes('"connection_ack"') && resolve(ws.url()))),
    );
    await runQuery(page, "subscription { accountEvents { __typename } }");
    expect(await acknowledged).toBe(server.wsUrl);
    await page.close();
  });

  it("the docs page renders the OpenAPI document served at /api/openapi.json", { timeout: 180_000 }, async () => {
    const served = await fetch(`${server.url}/api/openapi.json`);
    const page = await open("/api/docs");
    expect(await page.title()).toBe("Spindle REST API");
    expect(served.status).toBe(200);
    const document = (await served.json()) as { info: { title: string }; paths: Record<string, Record<string, unknown>> };
    const methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    const operations = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((key) => methods.includes(key))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    await page.locator(".swagger-ui .info .title").waitFor();
    expect(await page.locator(".swagger-ui .info .title").textContent()).toContain(document.info.title);
    expect(await page.locator(".swagger-ui .errors-wrapper").count()).toBe(0);
    expect((await renderedOperations(page, operations.length)).sort()).toEqual(operations.sort());
    await page.close();
  });

  afterEach(() => {
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((url) => !isLocal(url))).toEqual([]);
    expect(problems).toEqual([]);
  });
});
