// What the agent reports about its machine, checked against the machine itself: load figures against
// a busy process, /proc/meminfo and df; capabilities against the programs that really answer here.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { createSpawner } from "../../src/agent/process.js";
import type { Child } from "../../src/agent/process.types.js";
import { detectCapabilities, findContainerRuntime, findPython, hardware, sampleMachine } from "../../src/agent/system.js";

const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop(0)));
});

/** Whether `command` exits with 0 within 5 s. */
function answers(command: string, ...args: string[]): boolean {
  return spawnSync(command, args, { timeout: 5_000, stdio: "ignore" }).status === 0;
}

describe("sampleMachine", () => {
  it("gives percentages, the first CPU figure measured over a short window", async () => {
    const load = await sampleMachine();
    for (const value of [load.cpuPercent, load.memoryPercent, load.diskPercent]) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(100);
    }
  });

  it("sees a busy process in the CPU figure since the previous call", async () => {
    await sampleMachine();
    const busy = createSpawner(null)({ command: "while :; do :; done", shell: true, onLine() {} });
    children.push(busy);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // One busy core out of os.availableParallelism(), give or take a noisy neighbour.
    expect((await sampleMachine()).cpuPercent).toBeGreaterThan(10);
  });

  it("counts memory as MemTotal - MemAvailable", async () => {
    const meminfo = readFileSync("/proc/meminfo", "utf8");
    const kilobytes = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)![1]);
    const expected = ((kilobytes("MemTotal") - kilobytes("MemAvailable")) / kilobytes("MemTotal")) * 100;
    expect((await sampleMachine()).memoryPercent).toBeCloseTo(expected, 0);
  });

  it("counts disk use as df does, for the filesystem of the given path", async () => {
    const df = spawnSync("df", ["-P", os.tmpdir()], { encoding: "utf8" });
    // df -P: Filesystem 1024-blocks Used Available Capacity Mounted-on; Capacity is rounded up.
    const [, used, available] = df.stdout.trim().split("\n")[1]!.trim().split(/\s+/).slice(1).map(Number);
    const expected = (used! / (used! + available!)) * 100;
    expect(Math.abs((await sampleMachine(os.tmpdir())).diskPercent - expected)).toBeLessThan(1);
    await expect(sampleMachine("/no/such/path")).rejects.toThrow(/ENOENT/);
  });
});

describe("hardware", () => {
  it("describes the cores, memory and system", () => {
    expect(hardware()).toMatchObject({
      cpuCores: os.availableParallelism(),
      memoryBytes: os.totalmem(),
      platform: os.platform(),
      release: os.release(),
      arch: os.arch(),
      hostname: os.hostname(),
    });
  });
});

describe("detectCapabilities", () => {
  const docker = answers("docker", "info");
  const podman = answers("podman", "info");

  it("lists what really runs here: shell, node, python, and a container runtime only when its daemon answers", async () => {
    const python = await findPython();
    if (answers("python3", "--version")) expect(python).toBe("python3");

    const capabilities = await detectCapabilities();
    expect(capabilities).toContain("node");
    expect(capabilities.includes("shell")).toBe(existsSync("/bin/sh"));
    expect(capabilities.includes("python")).toBe(python !== null);
    expect(capabilities.includes("docker")).toBe(docker);
    expect(capabilities.includes("podman")).toBe(podman);
    expect(await findContainerRuntime()).toBe(docker ? "docker" : podman ? "podman" : null);
  });

  // The case of this development machine: a docker CLI that finds no daemon must not count.
  it.runIf(answers("docker", "--version") && !docker)("does not take an installed docker CLI for a runtime", async () => {
    expect(await detectCapabilities()).not.toContain("docker");
    if (!podman) expect(await findContainerRuntime()).toBeNull();
  });
});
