// Agents (api-v1's agents): named executors that live on a machine. A task may target an agent;
// it then also targets the agent's machine, so only that machine claims it. Members with write
// access create, rename and remove agents; an agent's status (idle, busy, offline) is reported by
// its machine or set by a member. Every change is an `agent.status` event of the workspace stream.
import { z } from "zod";
import type { Agent, AgentStatus } from "../../generated/prisma/client.js";
import { isUniqueViolation } from "../../infra/db.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, idempotencyKey, name, text, uuid } from "../../schema/validation.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteEvent } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";

type Tx = WorkTx;

export const agentStatuses = ["IDLE", "BUSY", "OFFLINE"] as const satisfies readonly AgentStatus[];

const status = z.enum(agentStatuses, { error: `must be one of ${agentStatuses.join(", ")}` });

const createInput = z.object({
  machineId: uuid("a machine"),
  name: name(100),
  description: text(2000).trim().nullish(),
  status: status.nullish(),
  idempotencyKey: idempotencyKey.nullish(),
});

const updateInput = z.object({
  id,
  name: name(100).optional(),
  description: text(2000).trim().nullish(),
});

const nameTaken = (agentName: string) =>
  conflict(`The machine already has an agent named "${agentName}"`, { fields: [{ field: "input.name", message: "already taken on this machine" }] });

export function createAgentService(deps: DomainDeps) {
  const { prisma } = deps;
  const { work } = deps;

  /** The `agent.status` event every change makes: its status now, and what happened. */
  function announce(tx: Tx, agent: Agent, action: "created" | "updated" | "status" | "deleted") {
    noteEvent(tx, {
      workspaceId: agent.workspaceId,
      type: "agent.status",
      subjectType: "AGENT",
      subjectId: agent.id,
      data: { agentId: agent.id, machineId: agent.machineId, name: agent.name, status: action === "deleted" ? "OFFLINE" : agent.status, action },
    });
  }

  /** The agent, if the viewer may `need` it (a stranger gets the same NOT_FOUND as a missing id). */
  async function loadForUser(ctx: RequestContext, agentId: string, need: "read" | "write") {
    requireId(agentId, "agent");
    const agent = await prisma.agent.findUnique({ where: { id: agentId } });
    if (!agent) throw notFound("agent", agentId);
    await ctx.access.require(agent.workspaceId, need, { type: "agent", id: agentId });
    return agent;
  }

  /** For a machine credential: only the agents living on the calling machine exist. */
  async function loadForCaller(ctx: RequestContext, agentId: string) {
    if (ctx.viewer.kind !== "machine") return loadForUser(ctx, agentId, "write");
    requireId(agentId, "agent");
    const agent = await prisma.agent.findUnique({ where: { id: agentId } });
    if (!agent || agent.machineId !== ctx.viewer.machineId) throw notFound("agent", agentId);
    return agent;
  }

  return {
    /** An agent the viewer may read (`agent(id)`). */
    get: (ctx: RequestContext, agentId: string) => loadForUser(ctx, agentId, "read"),

    async create(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(createInput, raw);
      const machine = await prisma.machine.findUnique({
        where: { id: input.machineId },
        select: { id: true, workspaceId: true, decommissionedAt: true, maxAgents: true },
      });
      if (!machine) throw notFound("machine", input.machineId);
      await ctx.access.require(machine.workspaceId, "write", { type: "machine", id: machine.id });
      if (machine.decommissionedAt) throw conflict(`Cannot add an agent to machine ${machine.id}: it is DECOMMISSIONED`, { status: "DECOMMISSIONED" });
      try {
        return await work.create({ viewer: ctx.viewer, operation: "createAgent", key: input.idempotencyKey, input: raw }, async (tx) => {
            if (machine.maxAgents !== null) {
              // The machine row is locked, so agents added at once cannot pass the limit together.
              await tx.$queryRaw`SELECT 1 FROM "Machine" WHERE "id" = ${machine.id}::uuid FOR UPDATE`;
              const count = await tx.agent.count({ where: { machineId: machine.id } });
              if (count >= machine.maxAgents) {
                throw conflict(`Machine ${machine.id} already has ${count} agents, its limit (maxAgents ${machine.maxAgents})`, {
                  fields: [{ field: "input.machineId", message: "the machine has no room for another agent" }],
                });
              }
            }
            const agent = await tx.agent.create({
              data: {
                workspaceId: machine.workspaceId,
                machineId: machine.id,
                name: input.name,
                description: input.description ?? null,
                status: input.status ?? "OFFLINE",
              },
            });
            announce(tx, agent, "created");
            await audit(tx, ctx, { workspaceId: agent.workspaceId, action: "agent.create", targetType: "Agent", targetId: agent.id, data: { name: agent.name, machineId: agent.machineId } });
            return { id: agent.id };
          });
      } catch (error) {
        if (isUniqueViolation(error)) throw nameTaken(input.name);
        throw error;
      }
    },

    async update(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(updateInput, raw);
      const agent = await loadForUser(ctx, input.id, "write");
      if (input.name === undefined && input.description === undefined) throw validationError([{ field: "input", message: "change at least one field" }]);
      try {
        return await work.run(async (tx) => {
          const updated = await tx.agent.update({
            where: { id: agent.id },
            data: { name: input.name, description: input.description },
          });
          announce(tx, updated, "updated");
          await audit(tx, ctx, { workspaceId: agent.workspaceId, action: "agent.update", targetType: "Agent", targetId: agent.id, data: { name: updated.name } });
          return { id: agent.id };
        });
      } catch (error) {
        if (isUniqueViolation(error) && input.name) throw nameTaken(input.name);
        throw error;
      }
    },

    /** Its machine reports an agent's status, or a member sets it (api-v1 start: IDLE, stop: OFFLINE). */
    async setStatus(ctx: RequestContext, agentId: string, rawStatus: unknown): Promise<{ id: string }> {
      const parsed = status.safeParse(rawStatus);
      if (!parsed.success) throw validationError([{ field: "status", message: parsed.error.issues[0]!.message }]);
      const agent = await loadForCaller(ctx, agentId);
      if (agent.status === parsed.data) return { id: agent.id };
      return work.run(async (tx) => {
        const updated = await tx.agent.update({ where: { id: agent.id }, data: { status: parsed.data } });
        announce(tx, updated, "status");
        await audit(tx, ctx, { workspaceId: agent.workspaceId, action: "agent.status", targetType: "Agent", targetId: agent.id, data: { from: agent.status, to: updated.status } });
        return { id: agent.id };
      });
    },

    /** Removes the agent; tasks that targeted it keep targeting its machine. */
    async delete(ctx: RequestContext, agentId: string): Promise<{ id: string }> {
      const agent = await loadForUser(ctx, agentId, "write");
      return work.run(async (tx) => {
        await tx.agent.delete({ where: { id: agent.id } });
        announce(tx, agent, "deleted");
        await audit(tx, ctx, { workspaceId: agent.workspaceId, action: "agent.delete", targetType: "Agent", targetId: agent.id, data: { name: agent.name } });
        return { id: agent.id };
      });
    },

    /**
     * What a task targeting `agentId` targets (for the task module): the agent and its machine.
     * An agent outside the workspace is a VALIDATION error on `field`, as a missing one is.
     */
    async target(workspaceId: string, agentId: string | null | undefined, field: string): Promise<{ agentId: string; machineId: string } | null> {
      if (!agentId) return null;
      const agent = await prisma.agent.findFirst({ where: { id: agentId, workspaceId }, select: { id: true, machineId: true } });
      if (!agent) throw validationError([{ field, message: "no such agent in this workspace" }]);
      return { agentId: agent.id, machineId: agent.machineId };
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
