// The repository's own files, for the build checks that read sources (import cycles, the unit of
// work, docs drift). Generated code is left out.
import { readdirSync } from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const SRC = path.join(ROOT, "src");

/** Absolute paths of the files under `dir` whose names end with `suffix`, skipping `generated/`. */
export function filesUnder(dir: string, suffix = ".ts"): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "generated" ? [] : filesUnder(full, suffix);
    return entry.name.endsWith(suffix) ? [full] : [];
  });
}
