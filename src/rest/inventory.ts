// The legacy endpoint inventory (docs/legacy-endpoints.tsv, a copy of the seed documents' list):
// every documented endpoint, core or extended. Rows without a route answer 501 naming themselves.
import { readFileSync } from "node:fs";
import { DIALECTS, type Dialect } from "./route.js";

export interface InventoryRow {
  dialect: Dialect;
  /** GET, POST, ... or WS. */
  method: string;
  path: string;
  summary: string;
  scope: "core" | "extended";
}

export const INVENTORY_FILE = new URL("../../docs/legacy-endpoints.tsv", import.meta.url);

export function readInventory(file: URL = INVENTORY_FILE): InventoryRow[] {
  const [, ...lines] = readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "");
  return lines.map((line) => {
    const [dialect, method, path, summary, , scope] = line.split("\t");
    if (!DIALECTS.includes(dialect as Dialect) || !method || !path || (scope !== "core" && scope !== "extended")) {
      throw new Error(`${file.pathname}: malformed row: ${line}`);
    }
    return { dialect: dialect as Dialect, method, path, summary: summary ?? "", scope };
  });
}

/**
 * `/workspaces/{id}/graph` and `/api/workflows/:id` alike, as the router writes paths. A query a
 * document writes into the path (`/members?developerId=N`) is not part of it.
 */
export const routerPath = (documented: string) => documented.split("?")[0]!.replace(/\{(\w+)\}/g, ":$1");
