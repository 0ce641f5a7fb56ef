// The reference for bench/request-path.ts: the least a server can do for a worker's status read.
// node:http + pg, no framework: read the JSON body, take `variables.id`, run one prepared SELECT by
// primary key, answer JSON. No authentication, no validation beyond the id, no GraphQL.
//
//   DATABASE_URL=postgresql://... PORT=4100 node bench/bare-reference.mjs
import { createServer } from "node:http";
import pg from "pg";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const statusById = {
  name: "worker-status-by-id",
  text: 'SELECT "status", "tickCount", "errorCount", "lastTickAt" FROM "Worker" WHERE "id" = $1',
};

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    try {
      const { variables } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const { rows } = await pool.query({ ...statusById, values: [variables.id] });
      const body = JSON.stringify({ data: { worker: rows[0] ?? null } });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    } catch (error) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: String(error) }));
    }
  });
});
server.listen(Number(process.env.PORT ?? 4100), "127.0.0.1", () => process.send?.("listening"));
process.on("SIGTERM", () => server.close(() => pool.end().then(() => process.exit(0))));
