// Spindle's version, from package.json (health answers and the OpenAPI document show it).
import { readFileSync } from "node:fs";

export const SPINDLE_VERSION: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
