// Agents in GraphQL: the Agent type, a machine's and a workspace's agents, and the mutations that
// make, rename, report and remove them (agent.service.ts holds the rules).
import type { Prisma } from "../../generated/prisma/client.js";
import { builder, pageSize } from "../../schema/builder.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { filterId } from "../task/task.schema.js";
import { agentStatuses } from "./agent.service.js";

export const AgentStatusEnum = builder.enumType("AgentStatus", {
  description: "As its machine reports it, or a member sets it (api-v1 agent start: IDLE, stop: OFFLINE).",
  values: agentStatuses,
});

export const AgentType = builder.prismaObject("Agent", {
  // Users of the workspace, and the machine the agent lives on.
  authScopes: (agent) => ({ $any: { workspaceMember: agent.workspaceId, machineIs: agent.machineId } }),
  description: "An executor living on a machine (api-v1 agent). Tasks that target it are claimed by its machine only.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    machineId: t.exposeID("machineId"),
    machine: t.relation("machine"),
    name: t.exposeString("name", { description: "Unique on its machine" }),
    description: t.exposeString("description", { nullable: true }),
    status: t.expose("status", { type: AgentStatusEnum }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

const oldestFirst = [{ createdAt: "asc" as const }, { id: "asc" as const }];

builder.prismaObjectFields("Machine", (t) => ({
  maxAgents: t.exposeInt("maxAgents", { nullable: true, description: "How many agents may live on it (api-v1 max_agents); null: no limit" }),
  agents: t.relation("agents", { description: "Its agents, oldest first", query: { orderBy: oldestFirst } }),
}));

builder.prismaObjectFields("Workspace", (t) => ({
  agents: t.relatedConnection("agents", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "The agents on the workspace's machines, oldest first.",
    args: {
      machineId: t.arg.id({ description: "Only this machine's" }),
      status: t.arg({ type: [AgentStatusEnum], description: "Any of these" }),
    },
    query: (args) => {
      const where: Prisma.AgentWhereInput = {};
      const machineId = filterId(args.machineId, "machineId");
      if (machineId) where.machineId = machineId;
      if (args.status?.length) where.status = { in: args.status };
      return { where, orderBy: oldestFirst };
    },
  }),
}));

const CreateAgentInput = builder.inputType("CreateAgentInput", {
  fields: (t) => ({
    machineId: t.id({ required: true, description: "The machine it lives on (not decommissioned; within its maxAgents)" }),
    name: t.string({ required: true, description: "1-100 characters, unique on the machine" }),
    description: t.string(),
    status: t.field({ type: AgentStatusEnum, description: "OFFLINE unless given" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateAgentInput = builder.inputType("UpdateAgentInput", {
  description: "Fields left out stay as they are; a null description clears it.",
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    description: t.string(),
  }),
});

const agentById = (id: string) => ({ where: { id } });

builder.queryFields((t) => ({
  agent: t.prismaField({
    type: AgentType,
    description: "An agent of a workspace the viewer belongs to.",
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const agent = await ctx.services.agents.get(ctx, String(id));
      return ctx.prisma.agent.findUniqueOrThrow({ ...query, ...agentById(agent.id) });
    },
  }),
}));

builder.mutationFields((t) => ({
  createAgent: t.prismaField({
    type: AgentType,
    description: "Adds an agent to a machine (members with write access).",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateAgentInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.agents.create(ctx, input);
      return ctx.prisma.agent.findUniqueOrThrow({ ...query, ...agentById(id) });
    },
  }),
  updateAgent: t.prismaField({
    type: AgentType,
    description: "Renames an agent or changes its description (members with write access).",
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateAgentInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.agents.update(ctx, input);
      return ctx.prisma.agent.findUniqueOrThrow({ ...query, ...agentById(id) });
    },
  }),
  setAgentStatus: t.prismaField({
    type: AgentType,
    description: "The agent's machine reports its status, or a member with write access sets it.",
    authScopes: { machine: true, write: true },
    args: { id: t.arg.id({ required: true }), status: t.arg({ type: AgentStatusEnum, required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.agents.setStatus(ctx, String(args.id), args.status);
      return ctx.prisma.agent.findUniqueOrThrow({ ...query, ...agentById(id) });
    },
  }),
  deleteAgent: t.field({
    type: "ID",
    description: "Removes an agent (members with write access); its tasks keep targeting its machine. Answers the id.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.services.agents.delete(ctx, String(args.id))).id,
  }),
}));
