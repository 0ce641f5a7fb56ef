// Compiles src/ (the generated Prisma client included) to dist/ with tsc and tsconfig.build.json.
//   node scripts/build.mjs              always: empty dist/, compile (types checked; a type error writes nothing)
//   node scripts/build.mjs --if-stale   only when dist/ is missing or older than its inputs (npm's prestart)
//   node scripts/build.mjs --check      builds nothing: exit 0 when dist/ is up to date, 1 (and why) when not
//   --out-dir <dir>                     another folder than dist/ (a sibling of src/: see tsconfig.build.json)
// Plain JavaScript so that the check before every `npm start` costs a few milliseconds, not a TypeScript loader.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out-dir");
const outDir = path.resolve(outIndex >= 0 ? args[outIndex + 1] ?? "" : path.join(root, "dist"));
// Written last, after tsc succeeded, dated from the compile's start: a build that failed leaves none,
// and a source saved while tsc ran is newer than the build.
const stamp = path.join(outDir, ".built");
const inputs = ["src", "tsconfig.json", "tsconfig.build.json"].map((name) => path.join(root, name));

/** The newest modification time under `entry`. Folders count too: deleting or renaming a file changes its folder's time. */
function newest(entry) {
  const stats = statSync(entry, { throwIfNoEntry: false });
  if (!stats) return 0;
  let time = stats.mtimeMs;
  if (stats.isDirectory()) {
    for (const child of readdirSync(entry)) time = Math.max(time, newest(path.join(entry, child)));
  }
  return time;
}

/** Why the build must run, or null when it is up to date. */
function staleness() {
  const built = statSync(stamp, { throwIfNoEntry: false });
  if (!built) return `${path.relative(root, outDir)}/ has no finished build`;
  return Math.max(...inputs.map(newest)) > built.mtimeMs ? "src/ or a tsconfig changed since the last build" : null;
}

if (args.includes("--check") || args.includes("--if-stale")) {
  // A deployment may ship dist/ without src/: nothing to compare, nothing to build from.
  const reason = existsSync(path.join(root, "src")) ? staleness() : null;
  if (args.includes("--check")) {
    if (reason) process.stderr.write(`${reason}\n`);
    process.exit(reason ? 1 : 0);
  }
  if (!reason) process.exit(0);
  process.stderr.write(`Building ${path.relative(root, outDir)}/: ${reason} (npm run build)\n`);
}

const started = Date.now();
rmSync(outDir, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json"), "--outDir", outDir], {
  cwd: root,
  stdio: "inherit",
});
if (tsc.status !== 0) {
  process.stderr.write(`Build failed: ${path.relative(root, outDir)}/ was not written (the errors are above).\n`);
  process.exit(tsc.status ?? 1);
}
// Files the compiled code reads beside itself: the CODE workers' Python harness.
cpSync(path.join(root, "src/agent/python"), path.join(outDir, "agent/python"), { recursive: true, filter: (source) => !source.includes("__pycache__") });
writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
utimesSync(stamp, started / 1000, started / 1000);
process.stderr.write(`Built ${path.relative(root, outDir)}/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
