// The agent's children and its reaper, with real processes: output line by line (stdout, stderr,
// fd 3), stdin, stopping a whole process group with TERM then KILL, programs that cannot start,
// CPU and memory of a group, and children that die with the agent even when it is SIGKILLed.
import { spawn as spawnProcess, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createSpawner } from "../../src/agent/process.js";
import type { Child, OutputStream, SpawnOptions } from "../../src/agent/process.types.js";
import { Reaper } from "../../src/agent/reaper.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** Everything a test started, stopped after it whatever happened. */
const children: Child[] = [];
const groups: number[] = [];
const reapers: Reaper[] = [];
const agents: ChildProcess[] = [];
const tempDirs: string[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop(0)));
  for (const agent of agents.splice(0)) agent.kill("SIGKILL");
  for (const pgid of groups.splice(0)) killQuietly(-pgid);
  await Promise.all(reapers.splice(0).map((reaper) => reaper.close()));
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Starts a child with a spawner, recording what it says. */
function run(options: Partial<SpawnOptions> & { command: string }, reaper: Reaper | null = null) {
  const lines: Array<[OutputStream, string]> = [];
  const control: string[] = [];
  const child = createSpawner(reaper)({
    onLine: (stream, line) => lines.push([stream, line]),
    onControl: (line) => control.push(line),
    ...options,
  });
  children.push(child);
  const of = (stream: OutputStream) => lines.filter(([s]) => s === stream).map(([, line]) => line);
  return { child, lines, control, stdout: () => of("stdout"), stderr: () => of("stderr") };
}

/** Whether `pid` runs (a zombie does not: this machine's init leaves orphans unreaped). */
function isRunning(pid: number): boolean {
  try {
    return stateOf(readFileSync(`/proc/${pid}/stat`, "utf8")) !== "Z";
  } catch {
    return false;
  }
}

function stateOf(stat: string): string | undefined {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
}

/** The running members of process group `pgid`. */
function membersOf(pgid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return fields[0] !== "Z" && Number(fields[2]) === pgid ? [Number(pid)] : [];
      } catch {
        return [];
      }
    });
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("createSpawner", () => {
  it("delivers stdout and stderr line by line, in order, without \\r\\n, with a last line that has no newline", async () => {
    const { child, stdout, stderr } = run({ command: `echo one; echo two >&2; echo three; printf 'four\\r\\n\\nfive'; echo six >&2`, shell: true });
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(stdout()).toEqual(["one", "three", "four", "", "five"]);
    expect(stderr()).toEqual(["two", "six"]);
  });

  it("cuts lines longer than 16 KiB into pieces, never inside a UTF-8 character, and joins characters split across writes", async () => {
    // The pauses make the reader see "\r" apart from its "\n", and the two bytes of "é" apart.
    const script = `
      const out = (data) => process.stdout.write(data);
      const pause = () => new Promise((resolve) => setTimeout(resolve, 100));
      out("a".repeat(40000) + "\\n");
      out("a".repeat(16383) + "é\\n");
      out("b".repeat(16384) + "\\r");
      await pause();
      out("\\n");
      out("é".repeat(10000) + "\\n");
      const split = Buffer.from("né\\n");
      out(split.subarray(0, 2));
      await pause();
      out(split.subarray(2));
    `;
    const { child, stdout } = run({ command: process.execPath, args: ["--input-type=module", "-e", script] });
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(stdout()).toEqual([
      "a".repeat(16384),
      "a".repeat(16384),
      "a".repeat(40000 - 2 * 16384),
      "a".repeat(16383),
      "é",
      "b".repeat(16384),
      "é".repeat(8192),
      "é".repeat(10000 - 8192),
      "né",
    ]);
  });

  it("sends the lines written to fd 3 to onControl, apart from stdout", async () => {
    const { child, stdout, control } = run({ command: `echo out; echo 'ready 1' >&3; echo bye >&3`, shell: true, control: true });
    await child.exited;
    expect(stdout()).toEqual(["out"]);
    expect(control).toEqual(["ready 1", "bye"]);
  });

  it("writes a string to stdin and closes it, or leaves stdin open with 'pipe'", async () => {
    const given = run({ command: "cat", stdin: "hello\nworld" });
    expect(await given.child.exited).toEqual({ code: 0, signal: null });
    expect(given.stdout()).toEqual(["hello", "world"]);

    const piped = run({ command: "cat", stdin: "pipe" });
    piped.child.stdin!.write("typed\n");
    piped.child.stdin!.end();
    await piped.child.exited;
    expect(piped.stdout()).toEqual(["typed"]);

    expect(run({ command: "cat" }).child.stdin).toBeNull();
  });

  it("runs a shell command with its args as positional parameters, in the given environment and directory", async () => {
    const { child, stdout } = run({ command: `echo "$1|$2|$GREETING|$(pwd)"`, args: ["a b", "$HOME"], shell: true, env: { GREETING: "hi" }, cwd: "/tmp" });
    await child.exited;
    expect(stdout()).toEqual(["a b|$HOME|hi|/tmp"]);
  });

  it("reports the exit code, or the signal that ended the child", async () => {
    expect(await run({ command: "exit 3", shell: true }).child.exited).toEqual({ code: 3, signal: null });
    expect(await run({ command: "kill -KILL $$", shell: true }).child.exited).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("stop() sends TERM to the whole process group: a shell's grandchildren die too", async () => {
    const { child } = run({ command: "sleep 100 & sleep 100; wait", shell: true });
    await waitFor(() => membersOf(child.pid).length === 3, "the shell and its two sleeps");
    const members = membersOf(child.pid);

    expect(await child.stop(5_000)).toEqual({ code: null, signal: "SIGTERM" });
    await waitFor(() => members.every((pid) => !isRunning(pid)), "every member to be gone", 5_000);
    expect(await child.usage()).toBeNull();
  });

  it("stop() KILLs the group after the grace period when TERM is ignored, and is safe to call again", async () => {
    const { child, stdout } = run({ command: `trap '' TERM; echo ready; sleep 100`, shell: true });
    await waitFor(() => stdout().includes("ready"), "the trap to be set");
    const started = Date.now();

    const stopping = child.stop(500);
    expect(child.stop(10_000)).toBe(stopping);
    expect(await stopping).toEqual({ code: null, signal: "SIGKILL" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(membersOf(child.pid)).toEqual([]);
    expect(await child.stop(0)).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("does not wait forever for a grandchild that keeps the output open, and kills what is left of the group", async () => {
    const { child, stdout } = run({ command: "sleep 100 & echo $!", shell: true });
    const started = Date.now();
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(10_000);
    const grandchild = Number(stdout()[0]);
    expect(grandchild).toBeGreaterThan(0);
    await waitFor(() => !isRunning(grandchild), "the grandchild to be killed", 5_000);
  });

  it("turns a program that cannot start into exit code 127 and a line on stderr, without throwing", async () => {
    const missing = run({ command: "python9-does-not-exist", args: ["-V"] });
    expect(await missing.child.exited).toEqual({ code: 127, signal: null });
    expect(missing.lines).toEqual([["stderr", "spawn python9-does-not-exist: command not found"]]);
    expect(await missing.child.stop(1_000)).toEqual({ code: 127, signal: null });
    expect(await missing.child.usage()).toBeNull();

    const nowhere = run({ command: "ls", cwd: "/no/such/directory" });
    expect(await nowhere.child.exited).toEqual({ code: 127, signal: null });
    expect(nowhere.stderr()).toEqual(["spawn ls: working directory /no/such/directory does not exist"]);

    const dir = mkdtempSync(path.join(tmpdir(), "spindle-process-"));
    tempDirs.push(dir);
    const text = path.join(dir, "notes.txt");
    writeFileSync(text, "not a program\n", { mode: 0o644 });
    const notExecutable = run({ command: text });
    expect(await notExecutable.child.exited).toEqual({ code: 126, signal: null });
    expect(notExecutable.stderr()).toEqual([`spawn ${text}: permission denied`]);
  });

  it("usage() measures the CPU and memory of the whole group", async () => {
    const { child } = run({ command: "while :; do :; done", shell: true });
    const first = await child.usage();
    expect(first).toMatchObject({ cpuPercent: null });
    expect(first!.memoryBytes).toBeGreaterThan(0);

    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const second = await child.usage();
    expect(second!.cpuPercent).toBeGreaterThan(0);
    expect(second!.memoryBytes).toBeGreaterThan(0);

    await child.stop(1_000);
    expect(await child.usage()).toBeNull();
  });
});

describe("Reaper", () => {
  const reaperUrl = JSON.stringify(pathToFileURL(path.join(root, "src/agent/reaper.ts")).href);
  const processUrl = JSON.stringify(pathToFileURL(path.join(root, "src/agent/process.ts")).href);

  /** Runs `source` as an ES module in its own node process (with tsx, to import src/), its first stdout line as JSON. */
  function startScript<T>(source: string, ...args: string[]): { agent: ChildProcess; said: Promise<T> } {
    const dir = mkdtempSync(path.join(tmpdir(), "spindle-reaper-"));
    tempDirs.push(dir);
    const script = path.join(dir, "agent.mjs");
    writeFileSync(script, source);
    const agent = spawnProcess(process.execPath, ["--import", tsxLoader, script, ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    agents.push(agent);
    const said = new Promise<T>((resolve, reject) => {
      createInterface({ input: agent.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
      agent.once("exit", (code) => reject(new Error(`The script exited with ${code} before saying anything`)));
    });
    return { agent, said };
  }

  /** An agent with a reaper and one child started through it, idle until killed. */
  async function startAgent(childCommand: string) {
    const { agent, said } = startScript<{ watchdog: number; child: number }>(
      `import { Reaper } from ${reaperUrl};
       import { createSpawner } from ${processUrl};
       const reaper = await Reaper.start();
       const child = createSpawner(reaper)({ command: process.argv[2], shell: true, onLine() {} });
       console.log(JSON.stringify({ watchdog: reaper.pid, child: child.pid }));
       setInterval(() => {}, 60_000);`,
      childCommand,
    );
    const { watchdog, child } = await said;
    groups.push(watchdog, child);
    return { agent, watchdog, child };
  }

  it("stops the agent's children when the agent is SIGKILLed, and itself ignores INT and TERM", async () => {
    const { agent, watchdog, child } = await startAgent("sleep 1000");
    await waitFor(() => membersOf(child).length > 0, "the child to run");

    process.kill(watchdog, "SIGINT");
    process.kill(watchdog, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isRunning(watchdog)).toBe(true);

    agent.kill("SIGKILL");
    await waitFor(() => membersOf(child).length === 0, "the child to be stopped", 5_000);
    await waitFor(() => !isRunning(watchdog), "the watchdog to exit", 5_000);
  });

  it("KILLs a child that ignores TERM a few seconds after the agent died", async () => {
    const { agent, watchdog, child } = await startAgent(`trap '' TERM; sleep 1000`);
    await waitFor(() => membersOf(child).length === 2, "the shell and its sleep");

    agent.kill("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(membersOf(child)).toHaveLength(2);
    await waitFor(() => membersOf(child).length === 0, "the child to be killed", 10_000);
    await waitFor(() => !isRunning(watchdog), "the watchdog to exit", 5_000);
  });

  it("does not keep the agent's event loop alive", async () => {
    const { agent, said } = startScript<number>(`import { Reaper } from ${reaperUrl};\nconsole.log((await Reaper.start()).pid);`);
    const exited = new Promise((resolve) => agent.once("exit", resolve));
    const watchdog = await said;
    groups.push(watchdog);

    await waitFor(() => agent.exitCode !== null, "the agent to finish on its own", 10_000);
    expect(await exited).toBe(0);
    await waitFor(() => !isRunning(watchdog), "the watchdog to exit after the agent", 5_000);
  });

  it("tracks children started through the spawner; close() ends the watchdog, stopping what is still tracked", async () => {
    const reaper = await Reaper.start();
    reapers.push(reaper);
    const { child } = run({ command: "sleep", args: ["1000"] }, reaper);
    await waitFor(() => membersOf(child.pid).length === 1, "the child to run");

    await reaper.close();
    expect(isRunning(reaper.pid)).toBe(false);
    expect(await child.exited).toEqual({ code: null, signal: "SIGTERM" });
    expect(() => reaper.track(child.pid)).not.toThrow();
    expect(() => reaper.track(1)).toThrow(RangeError);
  });
});
