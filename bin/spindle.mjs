#!/usr/bin/env node
// The `spindle` command: compiles src/ to dist/ first when dist/ is missing or stale (as `npm start`
// does; the build's own messages go to stderr, so a command's output stays clean), then runs it.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const build = spawnSync(process.execPath, [`${root}scripts/build.mjs`, "--if-stale"], { cwd: root, stdio: ["ignore", 2, 2] });
if (build.status !== 0) process.exit(build.status ?? 1);
await import(new URL("../dist/cli/index.js", import.meta.url).href);
