// The reaper's watchdog (started by src/agent/reaper.ts, never imported): a tiny process in its own
// session that outlives the agent by a few seconds. The agent writes `+<pgid>` when it starts a child
// and `-<pgid>` when the child is gone. When stdin ends, the agent is gone (cleanly or by SIGKILL:
// the kernel closes the pipe either way), so every group still listed gets TERM, then KILL after a
// grace period, and the watchdog exits.
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { groupExists, signalGroup } from "./process-groups.js";

const GRACE_MS = 3_000;
const POLL_MS = 100;

const groups = new Set<number>();

// Only the end of stdin may stop the watchdog: a Ctrl-C or a TERM meant for the agent must not take
// away the one process that cleans up after it.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});

createInterface({ input: process.stdin })
  .on("line", applyCommand)
  .on("close", () => void reapAll());
process.stdout.write("ready\n");

function applyCommand(line: string): void {
  const match = /^([+-])(\d+)$/.exec(line.trim());
  const pgid = Number(match?.[2]);
  // kill(-0) or kill(-1) would signal the watchdog's own group or every process it may signal.
  if (!match || !Number.isSafeInteger(pgid) || pgid <= 1) return;
  if (match[1] === "+") groups.add(pgid);
  else groups.delete(pgid);
}

async function reapAll(): Promise<void> {
  signalAll("SIGTERM");
  const deadline = Date.now() + GRACE_MS;
  while (livingGroups().length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  signalAll("SIGKILL");
  process.exit(0);
}

function signalAll(signal: NodeJS.Signals): void {
  for (const pgid of livingGroups()) signalGroup(pgid, signal);
}

/** The tracked groups with a member that still runs. */
function livingGroups(): number[] {
  const running = runningGroups();
  return [...groups].filter((pgid) => (running ? running.has(pgid) : groupExists(pgid)));
}

/**
 * The groups of all processes that are not zombies, from /proc (null without it). kill(-pgid, 0)
 * alone would count zombies, which an init that does not reap orphans leaves behind for good.
 */
function runningGroups(): Set<number> | null {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  const running = new Set<number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // After the parenthesized command name: state (field 3), ppid, pgrp (field 5).
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state !== "Z") running.add(Number(pgrp));
    } catch {
      // Exited while we looked.
    }
  }
  return running;
}
