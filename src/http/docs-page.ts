// The API documentation page at /api/docs: Swagger UI rendering the OpenAPI document at
// /api/openapi.json, every asset served from the installed swagger-ui-dist so the page works
// without internet. Only the files listed here are served.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const swaggerUiDir = dirname(require.resolve("swagger-ui-dist/package.json"));
const swaggerUiVersion = (require("swagger-ui-dist/package.json") as { version: string }).version;

const DOCS_PATH = "/api/docs";

const INIT_SCRIPT = `SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  // Swagger UI's default sends the document to a public validator for a badge.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

// In every asset's URL, so browsers may keep assets for a year and still fetch new ones after an upgrade.
const version = createHash("sha256").update(swaggerUiVersion).update(INIT_SCRIPT).digest("hex").slice(0, 12);
const ASSETS = `${DOCS_PATH}/assets/${version}`;

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Spindle REST API</title>
    <link rel="icon" type="image/png" href="${ASSETS}/favicon-32x32.png">
    <link rel="stylesheet" href="${ASSETS}/swagger-ui.css">
  </head>
  <body>
    <div id="docs"></div>
    <script src="${ASSETS}/swagger-ui-bundle.js"></script>
    <script src="${ASSETS}/init.js"></script>
  </body>
</html>
`;

/** Nothing but this server: scripts and styles from the assets below, the document from /api/openapi.json. */
const PAGE_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const JS = "text/javascript; charset=utf-8";

const initScript = Buffer.from(INIT_SCRIPT);

interface Asset {
  type: string;
  body: () => Promise<Buffer>;
}

function packageFile(name: string, type: string): Asset {
  let body: Promise<Buffer> | undefined;
  return { type, body: () => (body ??= readFile(join(swaggerUiDir, name))) };
}

const assets = new Map<string, Asset>([
  [`${ASSETS}/swagger-ui-bundle.js`, packageFile("swagger-ui-bundle.js", JS)],
  [`${ASSETS}/swagger-ui.css`, packageFile("swagger-ui.css", "text/css; charset=utf-8")],
  [`${ASSETS}/favicon-32x32.png`, packageFile("favicon-32x32.png", "image/png")],
  [`${ASSETS}/init.js`, { type: JS, body: async () => initScript }],
]);

/** Every path `serveDocsPage` answers (GET and HEAD). */
export const DOCS_PAGE_PATHS: readonly string[] = [DOCS_PATH, ...assets.keys()];

function send(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, body: Buffer) {
  res.writeHead(200, { ...headers, "content-length": String(body.length), "x-content-type-options": "nosniff" });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Answers the docs page and its assets; false for anything else (left to the caller). */
export async function serveDocsPage(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const pathname = (req.url ?? "/").split("?")[0]!;
  if (pathname === DOCS_PATH) {
    send(req, res, { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache", "content-security-policy": PAGE_POLICY }, Buffer.from(PAGE));
    return true;
  }
  const asset = assets.get(pathname);
  if (!asset) return false;
  send(req, res, { "content-type": asset.type, "cache-control": "public, max-age=31536000, immutable" }, await asset.body());
  return true;
}
