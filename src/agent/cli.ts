// `spindle agent`, `spindle agent rotate`, `spindle agent recover`: enrollment, identity and the
// agent's run (agent.ts), with exit codes a service manager can act on (sysexits): 0 stopped
// cleanly, 64 usage, 69 the server could not be reached to enroll or recover, 77 the server refused
// this machine's credential or enrollment token, 78 not enrolled yet / unreadable state.
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { AGENT_HELP } from "./help.js";
import { AgentRecoverDocument, AgentRegisterDocument, AgentRotateDocument, AgentWhoAmIDocument } from "../generated/agent-graphql.js";
import { Agent } from "./agent.js";
import { AgentClient, describe, Refused, Unreachable } from "./client.js";
import { createAgentLog, type AgentLogLevel } from "./log.js";
import { LogShipper } from "./logs.js";
import { createSpawner } from "./process.js";
import { Reaper } from "./reaper.js";
import { defaultStateDir, StateFolder, type AgentIdentity } from "./state.js";
import { detectCapabilities, findContainerRuntime, findPython, hardware } from "./system.js";

export const AGENT_EXIT = { ok: 0, usage: 64, unavailable: 69, refused: 77, config: 78 } as const;


class UsageError extends Error {}

export async function agentCommand(args: string[]): Promise<number> {
  const sub = args[0] === "rotate" || args[0] === "recover" ? args[0] : null;
  const rest = sub ? args.slice(1) : args;
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(AGENT_HELP[sub ?? "agent"]);
    return AGENT_EXIT.ok;
  }
  try {
    if (sub === "rotate") return await rotate(rest);
    if (sub === "recover") return await recover(rest);
    return await runAgentCommand(rest);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`${(error as Error).message}\n\n${AGENT_HELP[sub ?? "agent"]}`);
      return AGENT_EXIT.usage;
    }
    if (error instanceof Unreachable) {
      process.stderr.write(`spindle agent: ${error.message}\n`);
      return AGENT_EXIT.unavailable;
    }
    if (error instanceof Refused) {
      process.stderr.write(`spindle agent: the server refused: ${error.message}\n`);
      return AGENT_EXIT.refused;
    }
    throw error;
  }
}

const runOptions = {
  server: { type: "string" },
  enroll: { type: "string" },
  name: { type: "string" },
  "external-id": { type: "string" },
  label: { type: "string", multiple: true },
  capability: { type: "string", multiple: true },
  executor: { type: "string", multiple: true },
  "max-tasks": { type: "string" },
  grace: { type: "string" },
  "kill-grace": { type: "string" },
  "log-buffer": { type: "string" },
  "state-dir": { type: "string" },
  "log-level": { type: "string" },
} as const;

function positiveInt(value: string | undefined, fallback: number, option: string, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${option} must be a whole number of at least ${min}, not "${value}"`);
  return n;
}

function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--server must be the server's URL, like http://spindle.example:4000 (got "${value}")`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--server must be an http:// or https:// URL (got "${value}")`);
  return url.origin;
}

function parseExecutors(specs: readonly string[] = []): Map<string, string> {
  const executors = new Map<string, string>();
  for (const spec of specs) {
    const at = spec.indexOf("=");
    const name = spec.slice(0, at).trim();
    const command = spec.slice(at + 1).trim();
    if (at <= 0 || !command || /\s/.test(name)) throw new UsageError(`--executor takes NAME=COMMAND (a capability name without spaces, then the command), not "${spec}"`);
    if (name === "shell") throw new UsageError('--executor cannot replace the built-in "shell" executor');
    executors.set(name, command);
  }
  return executors;
}

async function runAgentCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: runOptions, allowPositionals: true });
  if (positionals.length) throw new UsageError(`Unknown argument "${positionals[0]}"`);
  const level = (values["log-level"] ?? "info") as AgentLogLevel;
  if (!["debug", "info", "warn", "error"].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error, not "${level}"`);
  const log = createAgentLog(level);
  const executors = parseExecutors(values.executor);
  const maxTasks = positiveInt(values["max-tasks"], 4, "max-tasks");
  const graceMs = positiveInt(values.grace, 30, "grace", 0) * 1000;
  const killGraceMs = positiveInt(values["kill-grace"], 10, "kill-grace", 0) * 1000;
  const logBuffer = positiveInt(values["log-buffer"], 100_000, "log-buffer");
  const state = new StateFolder(values["state-dir"] ?? defaultStateDir());
  await state.prepare();

  const [detected, python, containerRuntime] = await Promise.all([detectCapabilities(), findPython(), findContainerRuntime()]);
  const capabilities = [...new Set([...detected, ...(values.capability ?? []), ...executors.keys()])];

  let identity = await state.read();
  if (!identity) {
    if (!values.enroll || !values.server) {
      process.stderr.write(
        `This machine is not enrolled (no ${state.file}).\n` +
          "Enroll it with a token from a workspace admin (createEnrollmentToken):\n  spindle agent --server URL --enroll spe_...\n",
      );
      return AGENT_EXIT.config;
    }
    identity = await enroll(state, {
      server: serverUrl(values.server),
      token: values.enroll,
      name: values.name ?? hostname(),
      externalId: values["external-id"] ?? hostname(),
      labels: values.label ?? [],
      capabilities,
    });
    log.info(`enrolled as ${identity.machineName} (${identity.machineId}); credential stored in ${state.file}`);
  } else if (values.enroll) {
    log.warn(`already enrolled as ${identity.machineName} (${identity.machineId}): --enroll is ignored (remove ${state.file} to enroll again)`);
  }
  if (values.server && serverUrl(values.server) !== identity.server) {
    identity = { ...identity, server: serverUrl(values.server) };
    await state.write(identity);
  }

  const client = new AgentClient({ server: identity.server, credential: identity.credential });
  try {
    const me = (await client.request(AgentWhoAmIDocument, {})).currentMachine;
    log.info(`machine ${me.name} (${me.id}), ${me.approval.toLowerCase()}; capabilities: ${capabilities.join(", ")}`);
  } catch (error) {
    if (error instanceof Refused) throw error;
    log.warn(`${describe(error)}; carrying on, and retrying`);
  }

  const reaper = await Reaper.start();
  const spawn = createSpawner(reaper);
  const logs = new LogShipper(client, log, { maxBufferedLines: logBuffer });
  let current = identity;
  const agent = new Agent(
    client,
    logs,
    spawn,
    log,
    {
      maxTasks,
      shutdownGraceMs: graceMs,
      killGraceMs,
      executors,
      capabilities,
      hardware: hardware(),
      diskPath: state.dir,
      workDir: state.workDir,
      python,
      containerRuntime,
    },
    {
      async reloadCredential() {
        const stored = await state.read().catch(() => null);
        if (!stored || stored.credential === current.credential) return false;
        current = stored;
        client.setCredential(stored.credential);
        return true;
      },
    },
  );
  const onSignal = (signal: NodeJS.Signals) => {
    log.info(`${signal}: stopping`);
    void agent.stop();
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  // A library's stray rejection must not take down the workers and tasks this agent keeps running.
  process.on("unhandledRejection", (reason) => log.error(`unexpected error (the agent carries on): ${describe(reason)}`));
  await agent.run();
  await logs.close(10_000);
  if (logs.size > 0) log.warn(`${logs.size} log line(s) could not be shipped before the agent stopped`);
  await reaper.close();
  return agent.failure ? AGENT_EXIT.refused : AGENT_EXIT.ok;
}

async function enroll(
  state: StateFolder,
  input: { server: string; token: string; name: string; externalId: string; labels: string[]; capabilities: string[] },
): Promise<AgentIdentity> {
  const client = new AgentClient({ server: input.server });
  const registered = (
    await client.request(AgentRegisterDocument, {
      input: { token: input.token, name: input.name, externalId: input.externalId, labels: input.labels, capabilities: input.capabilities, hardware: hardware() },
    })
  ).registerMachine;
  const identity: AgentIdentity = {
    server: input.server,
    machineId: registered.machine.id,
    machineName: registered.machine.name,
    workspaceId: registered.machine.workspaceId,
    credential: registered.credential,
    recoverySecret: registered.recoverySecret,
  };
  await state.write(identity);
  return identity;
}

async function storedIdentity(state: StateFolder): Promise<AgentIdentity> {
  const identity = await state.read();
  if (!identity) throw new UsageError(`This machine is not enrolled: ${state.file} does not exist`);
  return identity;
}

async function rotate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { "state-dir": { type: "string" } } });
  const state = new StateFolder(values["state-dir"] ?? defaultStateDir());
  const identity = await storedIdentity(state);
  const client = new AgentClient({ server: identity.server, credential: identity.credential });
  const rotated = (await client.request(AgentRotateDocument, {})).rotateMachineCredential;
  await state.write({ ...identity, credential: rotated.credential });
  process.stdout.write(`New credential for ${rotated.machine.name} (${rotated.machine.id}) stored in ${state.file}; the old one no longer works.\n`);
  return AGENT_EXIT.ok;
}

async function recover(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "state-dir": { type: "string" }, server: { type: "string" }, "machine-id": { type: "string" }, "recovery-secret": { type: "string" } },
  });
  const state = new StateFolder(values["state-dir"] ?? defaultStateDir());
  const given = values["recovery-secret"] ?? values["machine-id"];
  if (given && !(values["recovery-secret"] && values["machine-id"] && values.server)) {
    throw new UsageError("To rebuild the state folder give --server, --machine-id and --recovery-secret together");
  }
  const stored = given ? null : await storedIdentity(state);
  const server = values.server ? serverUrl(values.server) : stored!.server;
  const machineId = values["machine-id"] ?? stored!.machineId;
  // "-": read from stdin, so that the secret does not show in the process list.
  const recoverySecret = values["recovery-secret"] === "-" ? (await readStdin()).trim() : (values["recovery-secret"] ?? stored!.recoverySecret);
  const client = new AgentClient({ server });
  const recovered = (await client.request(AgentRecoverDocument, { input: { machineId, recoverySecret } })).recoverMachineCredential;
  await state.write({
    server,
    machineId: recovered.machine.id,
    machineName: recovered.machine.name,
    workspaceId: recovered.machine.workspaceId,
    credential: recovered.credential,
    recoverySecret: recovered.recoverySecret,
  });
  process.stdout.write(`New credential and recovery secret for ${recovered.machine.name} (${recovered.machine.id}) stored in ${state.file}.\n`);
  return AGENT_EXIT.ok;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
