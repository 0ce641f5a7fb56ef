// What the agent reports about its machine: load (CPU, memory, disk) for heartbeats, the hardware it
// registers with, and the kinds of work it can run (its capabilities: shell, python, node, docker, podman).
import { execFile } from "node:child_process";
import { access, readFile, statfs } from "node:fs/promises";
import os from "node:os";

/** A probe (`docker info`, `python3 --version`) that has not answered by then counts as absent. */
const PROBE_TIMEOUT_MS = 5_000;
/** The first CPU sample has no previous one to compare with: it measures over this long. */
const FIRST_CPU_WINDOW_MS = 200;

export interface MachineLoad {
  /** Busy share of all cores since the previous call, 0-100. */
  cpuPercent: number;
  /** Memory in use (not available to new programs without swapping), 0-100. */
  memoryPercent: number;
  /** Used share of the filesystem holding `path`, as df shows it (space reserved for root excluded), 0-100. */
  diskPercent: number;
}

export async function sampleMachine(path = "/"): Promise<MachineLoad> {
  const [cpuPercent, memoryPercent, diskPercent] = await Promise.all([cpuPercentSinceLastCall(), memoryPercentNow(), diskPercentOf(path)]);
  return { cpuPercent, memoryPercent, diskPercent };
}

export function hardware(): Record<string, unknown> {
  return {
    cpuCores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? null,
    memoryBytes: os.totalmem(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    hostname: os.hostname(),
  };
}

export async function detectCapabilities(): Promise<string[]> {
  const [shell, python, docker, podman] = await Promise.all([
    access("/bin/sh").then(() => true, () => false),
    findPython(),
    containerRuntimeAnswers("docker"),
    containerRuntimeAnswers("podman"),
  ]);
  const found: Array<[string, boolean]> = [
    ["shell", shell],
    ["python", python !== null],
    ["node", true],
    ["docker", docker],
    ["podman", podman],
  ];
  return found.filter(([, present]) => present).map(([name]) => name);
}

/** The command that runs Python 3 here ("python" only when it is not Python 2), or null. */
export async function findPython(): Promise<"python3" | "python" | null> {
  for (const command of ["python3", "python"] as const) {
    const probe = await run(command, ["--version"]);
    // Python 2 prints its version on stderr, Python 3 on stdout.
    if (probe.ok && /^Python 3\./.test(probe.output)) return command;
  }
  return null;
}

/** The container runtime whose daemon answers (docker first), or null: an installed CLI alone does not count. */
export async function findContainerRuntime(): Promise<"docker" | "podman" | null> {
  if (await containerRuntimeAnswers("docker")) return "docker";
  if (await containerRuntimeAnswers("podman")) return "podman";
  return null;
}

async function containerRuntimeAnswers(command: "docker" | "podman"): Promise<boolean> {
  return (await run(command, ["info"])).ok;
}

/** Runs a probe; ok when it exits with 0 within PROBE_TIMEOUT_MS (a missing program is simply not ok). */
function run(command: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: PROBE_TIMEOUT_MS, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      resolve({ ok: error === null, output: `${stdout}${stderr}`.trim() });
    });
  });
}

interface CpuTimes {
  busy: number;
  total: number;
}

let previousCpuTimes: CpuTimes | null = null;

async function cpuPercentSinceLastCall(): Promise<number> {
  let previous = previousCpuTimes;
  if (!previous) {
    previous = await cpuTimes();
    await new Promise((resolve) => setTimeout(resolve, FIRST_CPU_WINDOW_MS));
  }
  const now = await cpuTimes();
  previousCpuTimes = now;
  const total = now.total - previous.total;
  return total > 0 ? ((now.busy - previous.busy) / total) * 100 : 0;
}

/** Time spent by all cores since boot, from /proc/stat (in ticks), or os.cpus() (in ms) off Linux. */
async function cpuTimes(): Promise<CpuTimes> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => null);
  const fields = stat?.match(/^cpu\s+(.*)$/m)?.[1]?.trim().split(/\s+/).map(Number);
  if (fields && fields.length >= 5) {
    // user nice system idle iowait irq softirq steal (guest time is already counted in user and nice).
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const idleTime = idle + iowait;
    const total = user + nice + system + idleTime + irq + softirq + steal;
    return { busy: total - idleTime, total };
  }
  return os.cpus().reduce(
    (sum, { times }) => {
      const total = times.user + times.nice + times.sys + times.idle + times.irq;
      return { busy: sum.busy + total - times.idle, total: sum.total + total };
    },
    { busy: 0, total: 0 },
  );
}

async function memoryPercentNow(): Promise<number> {
  const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
  const kilobytes = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(meminfo)?.[1]);
  let total = kilobytes("MemTotal");
  let available = kilobytes("MemAvailable");
  if (!(total > 0) || Number.isNaN(available)) {
    total = os.totalmem();
    available = os.freemem();
  }
  return ((total - available) / total) * 100;
}

async function diskPercentOf(path: string): Promise<number> {
  const { blocks, bfree, bavail } = await statfs(path);
  const used = blocks - bfree;
  return used + bavail > 0 ? (used / (used + bavail)) * 100 : 0;
}
