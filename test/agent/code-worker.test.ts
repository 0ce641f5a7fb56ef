// CODE workers with real python3 through the agent's own spawner: the tick loop (interval start to
// start, ctx.state, ctx.tick_count), ctx.log and print lines, errors with their tracebacks, setup
// retried, settings applied without a restart, code that cannot run (exit 2), stop with teardown,
// and the harness's stdin commands on their own.
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  HARNESS_EXIT_UNRUNNABLE,
  harnessPath,
  startCodeWorker,
  type CodeWorker,
  type CodeWorkerEvents,
  type CodeWorkerSpec,
} from "../../src/agent/code-worker.js";
import { createSpawner } from "../../src/agent/process.js";
import type { Child, ExitStatus } from "../../src/agent/process.types.js";

const workDir = mkdtempSync(path.join(tmpdir(), "spindle-code-worker-"));
const spawn = createSpawner(null);
const started: CodeWorker[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((worker) => worker.stop(2_000)));
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

type Event =
  | { kind: "ready" }
  | { kind: "tick"; ok: boolean; error?: Parameters<CodeWorkerEvents["onTick"]>[1] }
  | { kind: "log"; level: string; message: string; stream: string }
  | { kind: "exit"; status: ExitStatus };

/** Starts `code` as a worker (interval 1 s unless told), recording every event in order. */
async function start(code: string, overrides: Partial<CodeWorkerSpec> = {}) {
  const events: Event[] = [];
  const spec: CodeWorkerSpec = {
    id: "w-1",
    name: "test block",
    revision: 1,
    code,
    tickIntervalSeconds: 1,
    settings: {},
    connectedBlocks: {},
    env: {},
    ...overrides,
  };
  const worker = await startCodeWorker(
    spec,
    { spawn, python: "python3", workDir },
    {
      onReady: () => events.push({ kind: "ready" }),
      onTick: (ok, error) => events.push({ kind: "tick", ok, error }),
      onLog: (level, message, stream) => events.push({ kind: "log", level, message, stream }),
      onExit: (status) => events.push({ kind: "exit", status }),
    },
  );
  started.push(worker);
  const logs = (stream = "ctx") => events.flatMap((e) => (e.kind === "log" && e.stream === stream ? [e.message] : []));
  const ticks = () => events.flatMap((e) => (e.kind === "tick" ? [e] : []));
  return { worker, events, logs, ticks };
}

/** Polls until `condition` holds (the machine is shared and slow: generous, never a fixed sleep). */
async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Python source written indented inside a test, with the common indentation removed. */
function py(source: string): string {
  const lines = source.replace(/^\n/, "").split("\n");
  const indent = Math.min(...lines.filter((line) => line.trim()).map((line) => /^ */.exec(line)![0].length));
  return lines.map((line) => line.slice(indent)).join("\n");
}

describe("code worker", () => {
  it("is ready, then ticks every interval start to start, keeping ctx.state and counting ticks; an overrun is followed at once", async () => {
    const { events, logs, ticks } = await start(
      py(`
        import time

        def tick(ctx):
            ctx.state["n"] = ctx.state.get("n", 0) + 1
            ctx.log("n=%d count=%d at=%.3f" % (ctx.state["n"], ctx.tick_count, time.monotonic()))
            if ctx.tick_count == 2:
                time.sleep(2)
      `),
    );
    await until(() => ticks().length >= 4, "four ticks");

    expect(events[0]).toEqual({ kind: "ready" });
    expect(ticks().every((tick) => tick.ok)).toBe(true);
    const lines = logs().slice(0, 4).map((line) => /^n=(\d+) count=(\d+) at=([\d.]+)$/.exec(line)!);
    expect(lines.map((match) => [Number(match[1]), Number(match[2])])).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]]);
    const [first, second, third, fourth] = lines.map((match) => Number(match[3]));
    // Start to start, measured by the harness itself: never sooner than the interval ...
    expect(second! - first!).toBeGreaterThanOrEqual(0.95);
    expect(fourth! - third!).toBeGreaterThanOrEqual(0.95);
    // ... and after the 2 s tick at once, not a whole interval later (that would be 3 s).
    expect(third! - second!).toBeGreaterThanOrEqual(2);
    expect(third! - second!).toBeLessThan(2.8);
  });

  it("sends ctx.log lines with their levels (multi-line messages whole) and what the code prints, each stream in order", async () => {
    const { logs, events } = await start(
      py(`
        import sys

        def setup(ctx):
            ctx.log("one")
            ctx.debug("two")
            ctx.info("three")
            ctx.warning("four\\nstill four")
            ctx.log("five", level="warn")
            ctx.error("six")
            print("out 1")
            print("out 2")
            print("err 1", file=sys.stderr)

        def tick(ctx):
            pass
      `),
    );
    await until(() => logs().length >= 6 && logs("stdout").length >= 2 && logs("stderr").length >= 1, "the setup's lines");

    const ctxLines = events.flatMap((e) => (e.kind === "log" && e.stream === "ctx" ? [[e.level, e.message]] : []));
    expect(ctxLines).toEqual([
      ["INFO", "one"],
      ["DEBUG", "two"],
      ["INFO", "three"],
      ["WARN", "four\nstill four"],
      ["WARN", "five"],
      ["ERROR", "six"],
    ]);
    const printed = events.flatMap((e) => (e.kind === "log" && e.stream !== "ctx" ? [[e.level, e.stream, e.message]] : []));
    expect(printed).toEqual([
      ["INFO", "stdout", "out 1"],
      ["INFO", "stdout", "out 2"],
      ["ERROR", "stderr", "err 1"],
    ]);
  });

  it("gives ctx the worker, its settings, connected blocks and environment", async () => {
    const { logs } = await start(
      py(`
        def tick(ctx):
            ctx.log("%s %s %d" % (ctx.worker.id, ctx.worker.name, ctx.worker.revision))
            ctx.log("%s %s" % (ctx.settings["greeting"], sorted(ctx.connected_blocks)))
            ctx.log("%s %s" % (ctx.env.get("API_URL"), "SPINDLE_WORKER" in ctx.env))
      `),
      { revision: 7, settings: { greeting: "hello" }, connectedBlocks: { b2: {}, b1: {} }, env: { API_URL: "http://example.test" } },
    );
    await until(() => logs().length >= 3, "the tick's lines");

    expect(logs().slice(0, 3)).toEqual(["w-1 test block 7", "hello ['b1', 'b2']", "http://example.test False"]);
  });

  it("reports a tick that raises with its traceback (also on stderr) and goes on ticking", async () => {
    const { ticks, logs } = await start(
      py(`
        def tick(ctx):
            raise ValueError("boom")
      `),
    );
    await until(() => ticks().length >= 2, "two ticks");

    const [first] = ticks();
    expect(first).toMatchObject({ ok: false, error: { phase: "tick", message: "ValueError: boom" } });
    expect(first!.error!.traceback).toMatch(/^Traceback \(most recent call last\):\n {2}File ".*code-w-1-r1\.py", line 2, in tick\n {4}raise ValueError\("boom"\)/);
    expect(first!.error!.traceback).not.toContain("spindle_harness");
    expect(ticks()[1]).toMatchObject({ ok: false, error: { phase: "tick" } });
    expect(logs("stderr")).toContain("ValueError: boom");
  });

  it("retries a setup that raises on the next interval, then is ready", async () => {
    const { events, ticks } = await start(
      py(`
        attempts = 0

        def setup(ctx):
            global attempts
            attempts += 1
            if attempts == 1:
                raise RuntimeError("not yet")

        def tick(ctx):
            pass
      `),
    );
    await until(() => ticks().length >= 2, "a tick after setup");

    const [failed, ok] = ticks();
    expect(failed).toMatchObject({ ok: false, error: { phase: "setup", message: "RuntimeError: not yet" } });
    expect(ok).toMatchObject({ ok: true });
    expect(events.findIndex((e) => e.kind === "ready")).toBeGreaterThan(events.indexOf(failed!));
  });

  it("applies new settings without a restart, and a shorter interval wakes the wait at once", async () => {
    const { worker, events, logs } = await start(
      py(`
        def tick(ctx):
            ctx.state["n"] = ctx.state.get("n", 0) + 1
            ctx.log("n=%d greeting=%s blocks=%s" % (ctx.state["n"], ctx.settings.get("greeting"), sorted(ctx.connected_blocks)))
      `),
      { tickIntervalSeconds: 3600, settings: { greeting: "hello" } },
    );
    await until(() => logs().length >= 1, "the first tick");
    worker.updateSettings({ tickIntervalSeconds: 1, settings: { greeting: "bye" }, connectedBlocks: { b9: {} } });
    await until(() => logs().length >= 3, "ticks at the new interval");

    expect(logs().slice(0, 3)).toEqual(["n=1 greeting=hello blocks=[]", "n=2 greeting=bye blocks=['b9']", "n=3 greeting=bye blocks=['b9']"]);
    expect(events.filter((e) => e.kind === "ready" || e.kind === "exit")).toEqual([{ kind: "ready" }]);
  });

  it("exits 2 with a message when the code has no tick(ctx) or does not compile", async () => {
    const noTick = await start("def setup(ctx):\n    pass\n");
    const broken = await start("def tick(ctx)\n    pass\n", { id: "w-2" });

    expect(await noTick.worker.exited).toEqual({ code: HARNESS_EXIT_UNRUNNABLE, signal: null });
    expect(noTick.ticks()).toEqual([
      { kind: "tick", ok: false, error: { phase: "setup", message: expect.stringMatching(/defines no tick\(ctx\) function/), traceback: "" } },
    ]);
    expect(await broken.worker.exited).toEqual({ code: HARNESS_EXIT_UNRUNNABLE, signal: null });
    expect(broken.ticks()[0]?.error).toMatchObject({ phase: "setup", message: expect.stringMatching(/^SyntaxError: /) });
    expect(broken.events.at(-1)).toEqual({ kind: "exit", status: { code: 2, signal: null } });
  });

  it("stop() interrupts a long tick, calls teardown(ctx) and exits 0", async () => {
    const { worker, events, logs } = await start(
      py(`
        import time

        def tick(ctx):
            ctx.log("sleeping")
            time.sleep(60)

        def teardown(ctx):
            ctx.log("teardown after %d tick(s)" % ctx.tick_count)
      `),
    );
    await until(() => logs().includes("sleeping"), "the tick to start");
    const asked = Date.now();
    const status = await worker.stop(10_000);

    expect(status).toEqual({ code: 0, signal: null });
    // Well within the grace period: the tick was interrupted, not waited for (nor KILLed).
    expect(Date.now() - asked).toBeLessThan(8_000);
    expect(logs()).toEqual(["sleeping", "teardown after 1 tick(s)"]);
    expect(events.at(-1)).toEqual({ kind: "exit", status: { code: 0, signal: null } });
  });

  it("shows a line on fd 3 that is not a harness message as a WARN and goes on", async () => {
    const { events, ticks } = await start(
      py(`
        import os

        def setup(ctx):
            os.write(3, b"not json\\n")
            os.write(3, b'{"type": "mystery"}\\n')

        def tick(ctx):
            pass
      `),
    );
    await until(() => ticks().length >= 1, "a tick");

    const warnings = events.flatMap((e) => (e.kind === "log" && e.level === "WARN" ? [e.message] : []));
    expect(warnings).toEqual(["[spindle agent] not a harness message on fd 3: not json", '[spindle agent] not a harness message on fd 3: {"type": "mystery"}']);
    expect(ticks()[0]).toMatchObject({ ok: true });
  });

  it("writes the code to a file only its user can read", async () => {
    await start("def tick(ctx):\n    pass\n", { id: "w/3", revision: 4 });
    expect(statSync(path.join(workDir, "code-w_3-r4.py")).mode & 0o777).toBe(0o600);
  });
});

describe("harness on its own", () => {
  const children: Child[] = [];
  afterEach(async () => {
    await Promise.all(children.splice(0).map((child) => child.stop(2_000)));
  });

  /** Runs the harness directly, with stdin in the test's hands; returns it and its fd 3 lines. */
  function runHarness(name: string) {
    const codeFile = path.join(workDir, `${name}.py`);
    writeFileSync(codeFile, "def tick(ctx):\n    ctx.log('tick')\n\ndef teardown(ctx):\n    ctx.log('teardown')\n");
    const control: string[] = [];
    const child = spawn({
      command: "python3",
      args: ["-u", harnessPath()],
      env: {
        PATH: process.env.PATH!,
        SPINDLE_CODE_FILE: codeFile,
        SPINDLE_WORKER: JSON.stringify({ id: name, name, revision: 1, tick_interval_seconds: 1, settings: {}, connected_blocks: {} }),
      },
      stdin: "pipe",
      control: true,
      onLine: () => {},
      onControl: (line) => control.push(line),
    });
    children.push(child);
    return { child, control };
  }
  const teardownLine = '{"type":"log","level":"INFO","message":"teardown"}';

  it("stops cleanly on a stop command", async () => {
    const { child, control } = runHarness("stop-command");
    await until(() => control.some((line) => line.startsWith('{"type":"tick"')), "a tick");
    child.stdin!.write('{"type":"stop"}\n');

    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(control.at(-1)).toBe(teardownLine);
  });

  it("stops cleanly at the end of stdin", async () => {
    const { child, control } = runHarness("stdin-end");
    await until(() => control.some((line) => line.startsWith('{"type":"tick"')), "a tick");
    child.stdin!.end();

    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(control.at(-1)).toBe(teardownLine);
  });
});
