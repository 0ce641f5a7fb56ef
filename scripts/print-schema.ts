// Writes schema.graphql from the code (sorted). With --check, fails when the file is stale.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { printedSchema } from "../src/schema/index.js";

const file = fileURLToPath(new URL("../schema.graphql", import.meta.url));
const printed = printedSchema();

if (process.argv.includes("--check")) {
  const current = await readFile(file, "utf8").catch(() => "");
  if (current !== printed) {
    process.stderr.write("schema.graphql is stale: run `npm run schema:print` and commit it.\n");
    process.exit(1);
  }
  process.stdout.write("schema.graphql is up to date.\n");
} else {
  await writeFile(file, printed);
  process.stdout.write(`Wrote ${file}\n`);
}
