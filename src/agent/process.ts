// Starts and stops the agent's children (the contract is src/agent/process.types.ts). Each child leads
// its own process group, so that stopping it, measuring it and reaping it take in everything it
// started: a shell command's grandchildren too. When the child exits, whatever is left of its group
// is killed once its output has ended, as a container's processes die with its first one.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { groupExists, signalGroup } from "./process-groups.js";
import type { Child, ExitStatus, Spawn, SpawnOptions, Usage } from "./process.types.js";
import type { Reaper } from "./reaper.js";

/** Longer lines are cut into pieces of at most this many bytes (never inside a UTF-8 character). */
const MAX_LINE_BYTES = 16 * 1024;
/** How long a grandchild may keep the output pipes open after the child exited. */
const OUTPUT_DRAIN_MS = 2_000;
/** Linux's USER_HZ and page size: the units of utime/stime and rss in /proc/<pid>/stat. */
const CLOCK_TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

export function createSpawner(reaper: Reaper | null): Spawn {
  return (options) => startChild(options, reaper);
}

function startChild(options: SpawnOptions, reaper: Reaper | null): Child {
  const [program, args] = programOf(options);
  let proc: ChildProcess;
  try {
    proc = spawn(program, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe", options.control ? "pipe" : "ignore"],
    });
  } catch (error) {
    return failedChild(program, options, Promise.resolve(error as NodeJS.ErrnoException));
  }
  // A program that cannot be started (ENOENT, EACCES) leaves no pid and reports an 'error' event.
  if (proc.pid === undefined) {
    return failedChild(program, options, new Promise((resolve) => proc.once("error", resolve)));
  }
  return new GroupChild(proc, proc.pid, options, reaper);
}

/** With `shell`, the args are the script's positional parameters ($1, $2, ...), never parsed by the shell. */
function programOf(options: SpawnOptions): [string, readonly string[]] {
  const args = options.args ?? [];
  return options.shell ? ["/bin/sh", ["-c", options.command, "sh", ...args]] : [options.command, args];
}

/** A child that never ran: it "exits" as a shell would (127 not found, 126 not runnable), saying why on stderr. */
function failedChild(program: string, options: SpawnOptions, failure: Promise<NodeJS.ErrnoException>): Child {
  const exited = failure.then((error): ExitStatus => {
    options.onLine("stderr", `spawn ${program}: ${failureReason(error, options.cwd)}`);
    return { code: error.code === "ENOENT" ? 127 : 126, signal: null };
  });
  return { pid: 0, exited, stdin: null, stop: () => exited, usage: async () => null };
}

function failureReason(error: NodeJS.ErrnoException, cwd: string | undefined): string {
  // A missing working directory also fails with ENOENT, which would blame the program.
  if (cwd !== undefined && !existsSync(cwd)) return `working directory ${cwd} does not exist`;
  if (error.code === "ENOENT") return "command not found";
  if (error.code === "EACCES") return "permission denied";
  return error.message;
}

class GroupChild implements Child {
  readonly exited: Promise<ExitStatus>;
  readonly stdin: NodeJS.WritableStream | null;
  /** False once signals could reach a stranger: the group is empty, or its id may have been reused. */
  private signalable = true;
  private leaderExited = false;
  private stopping: Promise<ExitStatus> | null = null;
  private previousCpu: CpuReading | null = null;

  constructor(
    proc: ChildProcess,
    readonly pid: number,
    options: SpawnOptions,
    private readonly reaper: Reaper | null,
  ) {
    reaper?.track(pid);
    this.stdin = prepareStdin(proc, options.stdin);
    this.exited = this.superviseExit(proc, readOutputs(proc, options));
  }

  /** A second call joins the first, whose grace period stands. */
  stop(graceMs: number): Promise<ExitStatus> {
    this.stopping ??= this.terminate(graceMs);
    return this.stopping;
  }

  async usage(): Promise<Usage | null> {
    if (this.leaderExited) return null;
    const sample = await sampleGroup(this.pid);
    if (!sample || this.leaderExited) return null;
    const at = performance.now();
    const cpuPercent = this.previousCpu ? cpuPercentSince(this.previousCpu, { ticks: sample.ticks, at }) : null;
    this.previousCpu = { ticks: sample.ticks, at };
    return { cpuPercent, memoryBytes: sample.rssPages * PAGE_BYTES };
  }

  private async superviseExit(proc: ChildProcess, outputs: Outputs): Promise<ExitStatus> {
    const status = await new Promise<ExitStatus>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    this.leaderExited = true;
    // An empty group stays empty; one with members keeps its id reserved until the last one is gone.
    const leftovers = groupExists(this.pid);
    this.signalable = leftovers;
    await settlesWithin(outputs.ended, OUTPUT_DRAIN_MS);
    outputs.finish();
    if (leftovers) signalGroup(this.pid, "SIGKILL");
    this.signalable = false;
    this.reaper?.untrack(this.pid);
    return status;
  }

  private async terminate(graceMs: number): Promise<ExitStatus> {
    if (this.signalable) {
      signalGroup(this.pid, "SIGTERM");
      const exitedInTime = await settlesWithin(this.exited, graceMs);
      if (!exitedInTime && this.signalable) signalGroup(this.pid, "SIGKILL");
    }
    return this.exited;
  }
}

function prepareStdin(proc: ChildProcess, stdin: SpawnOptions["stdin"]): NodeJS.WritableStream | null {
  if (!proc.stdin) return null;
  // A child that exits without reading all of its input fails our writes with EPIPE: that is its
  // business, not a reason for the agent to crash.
  proc.stdin.on("error", () => {});
  if (stdin === "pipe") return proc.stdin;
  proc.stdin.end(stdin);
  return null;
}

interface Outputs {
  /** Resolves when stdout, stderr and fd 3 have all ended. */
  ended: Promise<void>;
  /** Delivers what is left of unfinished lines and drops anything that would arrive later. */
  finish(): void;
}

function readOutputs(proc: ChildProcess, options: SpawnOptions): Outputs {
  let open = true;
  const readers: Array<[Readable | null, (line: string) => void]> = [
    [proc.stdout, (line) => options.onLine("stdout", line)],
    [proc.stderr, (line) => options.onLine("stderr", line)],
  ];
  const control = proc.stdio[3] as Readable | null | undefined;
  if (control) readers.push([control, (line) => options.onControl?.(line)]);

  const streams = readers.flatMap(([stream, deliver]) => {
    if (!stream) return [];
    const lines = new LineSplitter((line) => {
      if (open) deliver(line);
    });
    stream.on("data", (chunk: Buffer) => lines.push(chunk));
    stream.on("end", () => lines.flush());
    return [{ stream, lines, closed: new Promise<void>((resolve) => stream.once("close", () => resolve())) }];
  });
  return {
    ended: Promise.all(streams.map((s) => s.closed)).then(() => undefined),
    finish() {
      for (const { stream, lines } of streams) {
        lines.flush();
        stream.destroy();
      }
      open = false;
    },
  };
}

/**
 * Cuts a byte stream into lines: "\n" or "\r\n" ends a line, a line longer than `maxBytes` goes out
 * in pieces. Lines are decoded only when complete, so a UTF-8 character split across chunks survives.
 */
class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly deliver: (line: string) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      this.append(chunk.subarray(start, newline));
      this.deliverPending();
      start = newline + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
  }

  /** At the end of the stream: delivers the last line when it had no newline. */
  flush(): void {
    if (this.pendingBytes > 0) this.deliverPending();
  }

  private deliverPending(): void {
    let line = Buffer.concat(this.pending);
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    this.pending = [];
    this.pendingBytes = 0;
    this.deliver(line.toString("utf8"));
  }

  private append(part: Buffer): void {
    this.pending.push(part);
    this.pendingBytes += part.length;
    if (this.pendingBytes <= this.maxBytes) return;
    let rest = Buffer.concat(this.pending);
    // One byte over may be the "\r" of a "\r\n" still to come: keep it for the next chunk to decide.
    while (rest.length > this.maxBytes && !(rest.length === this.maxBytes + 1 && rest.at(-1) === 0x0d)) {
      const cut = characterBoundary(rest, this.maxBytes);
      this.deliver(rest.subarray(0, cut).toString("utf8"));
      rest = rest.subarray(cut);
    }
    this.pending = [rest];
    this.pendingBytes = rest.length;
  }
}

/** The largest offset <= `at` that does not fall inside a UTF-8 character (at most 4 bytes long). */
function characterBoundary(bytes: Buffer, at: number): number {
  for (let cut = at; cut > at - 4; cut -= 1) {
    // Continuation bytes are 10xxxxxx.
    if (((bytes[cut] ?? 0) & 0xc0) !== 0x80) return cut;
  }
  // Not UTF-8 after all: any cut will do.
  return at;
}

/** Whether `promise` settled within `ms` (the timer never outlives it). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface CpuReading {
  ticks: number;
  /** performance.now() when read. */
  at: number;
}

function cpuPercentSince(previous: CpuReading, now: CpuReading): number {
  const cpuSeconds = (now.ticks - previous.ticks) / CLOCK_TICKS_PER_SECOND;
  const wallSeconds = (now.at - previous.at) / 1000;
  // Members that exited since the previous reading took their ticks with them: never below zero.
  return wallSeconds > 0 ? Math.max(0, (cpuSeconds / wallSeconds) * 100) : 0;
}

interface GroupSample {
  /** CPU time in clock ticks, including that of members' children they already waited for. */
  ticks: number;
  rssPages: number;
}

/** Sums /proc/<pid>/stat over the members of process group `pgid`; null without /proc. */
async function sampleGroup(pgid: number): Promise<GroupSample | null> {
  const entries = await readdir("/proc").catch(() => null);
  if (!entries) return null;
  const stats = await Promise.all(
    entries.filter((name) => /^\d+$/.test(name)).map((pid) => readFile(`/proc/${pid}/stat`, "utf8").catch(() => null)),
  );
  const sample: GroupSample = { ticks: 0, rssPages: 0 };
  for (const text of stats) {
    const stat = text === null ? null : parseStat(text);
    if (stat?.pgrp !== pgid) continue;
    sample.ticks += stat.ticks;
    sample.rssPages += stat.rssPages;
  }
  return sample;
}

function parseStat(text: string): (GroupSample & { pgrp: number }) | null {
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields are numbered from 1 in proc(5); fields[0] is field 3 (state).
  const field = (n: number) => Number(fields[n - 3]);
  const pgrp = field(5);
  if (!Number.isInteger(pgrp)) return null;
  return { pgrp, ticks: field(14) + field(15) + field(16) + field(17), rssPages: field(24) };
}
