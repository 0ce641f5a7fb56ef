// Deployments: named sets of services (Spunto). A service runs an image or a command on a machine
// placed like a worker, moves along SERVICE_ACTIONS, and may claim a domain that it proves with a
// DNS TXT record.
import { randomBytes } from "node:crypto";
import { Resolver } from "node:dns/promises";
import { z } from "zod";
import { requireMachine } from "../../auth/viewer.js";
import { Prisma, type Service, type ServiceStatus } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError, type FieldProblem } from "../../schema/errors.js";
import { envVars, id, idempotencyKey, list, name as nameOf, text, uuid } from "../../schema/validation.js";
import { audit, unaudited } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteLogSourcesFinished, noteStatus } from "../shared/live.js";
import { placeOn, WAITING_FOR_MACHINE } from "../worker/placement.js";
import { LIVE_SERVICE_STATUSES } from "../worker/worker-statuses.js";
import { JSON_MAX_BYTES } from "../worker/worker.service.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";

type Tx = WorkTx;

export const SERVICE_STATUSES = ["STOPPED", "DEPLOYING", "RUNNING", "FAILED"] as const satisfies readonly ServiceStatus[];

/** The service state machine, the only place it is written down. */
export const SERVICE_ACTIONS = {
  deploy: { from: ["STOPPED", "DEPLOYING", "RUNNING", "FAILED"], to: "DEPLOYING" },
  start: { from: ["STOPPED", "FAILED"], to: "DEPLOYING" },
  stop: { from: ["DEPLOYING", "RUNNING", "FAILED"], to: "STOPPED" },
  running: { from: ["DEPLOYING"], to: "RUNNING" },
  fail: { from: ["DEPLOYING", "RUNNING"], to: "FAILED" },
} as const satisfies Record<string, { from: readonly ServiceStatus[]; to: ServiceStatus }>;
export type ServiceAction = keyof typeof SERVICE_ACTIONS;

const ACTION_PHRASE: Record<ServiceAction, string> = {
  deploy: "deploy",
  start: "start",
  stop: "stop",
  running: "mark as RUNNING",
  fail: "mark as FAILED",
};

export const MAX_SERVICES = 50;
export const CHALLENGE_PREFIX = "_spindle-challenge.";
export const challengeRecordName = (domain: string) => `${CHALLENGE_PREFIX}${domain}`;

const name = nameOf(100);
const image = nameOf(500).regex(/^\S+$/, "must be an image reference without spaces, like ghcr.io/acme/app:1.2");
const command = nameOf(4096);
const env = envVars(JSON_MAX_BYTES);
const domain = z
  .string()
  .trim()
  .toLowerCase()
  .transform((d) => d.replace(/\.$/, ""))
  .refine(
    (d) => d.length <= 253 && /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/.test(d),
    "must be a host name like app.example.com",
  );

const serviceFields = {
  name,
  image: image.nullish(),
  command: command.nullish(),
  env: env.nullish(),
  domain: domain.nullish(),
};
const needsImageOrCommand = (s: { image?: string | null; command?: string | null }) => s.image != null || s.command != null;
const IMAGE_OR_COMMAND = { message: "give an image or a command", path: ["image"] };

const createInput = z.object({
  workspaceId: uuid("a workspace"),
  name,
  services: list(z.object(serviceFields).refine(needsImageOrCommand, IMAGE_OR_COMMAND), MAX_SERVICES, "services").nullish(),
  idempotencyKey: idempotencyKey.nullish(),
});

const addServiceInput = z
  .object({ deploymentId: id, ...serviceFields, idempotencyKey: idempotencyKey.nullish() })
  .refine(needsImageOrCommand, IMAGE_OR_COMMAND);

const updateServiceInput = z.object({
  id,
  name: name.nullish(),
  image: image.nullish(),
  command: command.nullish(),
  env: env.nullish(),
  domain: domain.nullish(),
});

const targetInput = z.object({ id, serviceId: id.nullish() });

const reportInput = z.object({
  serviceId: id,
  revision: z.int("must be a whole number").min(0, "must be a revision the service had"),
  status: z.enum(["RUNNING", "FAILED", "RESTARTED"]),
  reason: text(500).trim().nullish(),
});

export function illegalServiceAction(action: ServiceAction, id: string, status: ServiceStatus) {
  return conflict(`Cannot ${ACTION_PHRASE[action]} service ${id}: it is ${status}`, { action, status });
}

const nameTaken = (deploymentName: string, field = "input.name") =>
  conflict(`The workspace already has a deployment named "${deploymentName}"`, {
    fields: [{ field, message: "already used by another deployment of the workspace" }],
  });

const domainTaken = (host: string, field: string) =>
  conflict(`The domain ${host} is already used by another service of this workspace`, {
    fields: [{ field, message: "already used by another service of this workspace" }],
  });

const serviceNameTaken = (serviceName: string, field: string) =>
  conflict(`The deployment already has a service named "${serviceName}"`, {
    fields: [{ field, message: "already used by another service of the deployment" }],
  });

/** A unique index lost a race the checks before it could not see: still a CONFLICT, never a 500. */
function uniqueViolation(error: unknown): never {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") {
    throw conflict("A deployment or service name was taken at the same moment; reload and try again");
  }
  throw error;
}

const newDomainToken = () => `spindle-verify-${randomBytes(24).toString("base64url")}`;

export function createDeploymentService(deps: DomainDeps) {
  const { prisma, config } = deps;
  const offlineAfter = () => config.domain.machineOfflineAfterSeconds;
  const { work } = deps;

  /** A service changed: its deployment's status stream (which shows the services) and the machines involved re-read. */
  function noteService(tx: Tx, service: { id: string; workspaceId: string; deploymentId: string }, machineIds: (string | null | undefined)[] = []) {
    noteStatus(tx, "SERVICE", service.id, service.workspaceId);
    noteStatus(tx, "DEPLOYMENT", service.deploymentId, service.workspaceId);
    for (const machineId of new Set(machineIds)) noteStatus(tx, "MACHINE", machineId, service.workspaceId);
  }

  /**
   * The machine restarted a RUNNING service that exited on its own: counted and kept as the reason,
   * the status stays RUNNING (a service that cannot come back is reported FAILED instead).
   */
  async function restarted(tx: Tx, ctx: RequestContext, service: Service, reason: string) {
    if (service.status !== "RUNNING") {
      throw conflict(`Cannot report a restart of service ${service.id}: it is ${service.status}, not RUNNING`, { status: service.status });
    }
    await tx.service.update({
      where: { id: service.id },
      data: { restartCount: { increment: 1 }, lastRestartAt: new Date(), statusReason: reason },
    });
    noteService(tx, service);
    await audit(tx, ctx, {
      workspaceId: service.workspaceId,
      action: "service.restart",
      targetType: "Service",
      targetId: service.id,
      data: { revision: service.revision, reason },
    });
    return { id: service.id };
  }

  /** Conditional update on the status the service was read with; DEPLOYING places it on a machine. */
  async function transition(tx: Tx, service: Service, action: ServiceAction, extra: { reason?: string | null; revision?: number; bump?: boolean } = {}) {
    const rule = SERVICE_ACTIONS[action];
    if (!(rule.from as readonly ServiceStatus[]).includes(service.status)) throw illegalServiceAction(action, service.id, service.status);
    const data: Prisma.ServiceUncheckedUpdateManyInput = { status: rule.to, statusReason: extra.reason ?? null };
    if (extra.bump) data.revision = { increment: 1 };
    if (rule.to === "DEPLOYING") {
      const machineId = await placeOn(tx, service.workspaceId, service.machineId, offlineAfter());
      data.machineId = machineId;
      if (!machineId) data.statusReason = WAITING_FOR_MACHINE;
    }
    const { count } = await tx.service.updateMany({
      where: { id: service.id, status: service.status, ...(extra.revision != null ? { revision: extra.revision } : {}) },
      data,
    });
    if (count === 0) {
      const now = await tx.service.findUnique({ where: { id: service.id }, select: { status: true, revision: true } });
      if (!now) throw notFound("service", service.id);
      if (extra.revision != null && now.revision !== extra.revision) throw staleRevision(service.id, extra.revision, now.revision);
      throw illegalServiceAction(action, service.id, now.status);
    }
    noteService(tx, service, [service.machineId, data.machineId as string | null | undefined]);
    return { id: service.id, from: service.status, to: rule.to };
  }

  async function authorizeDeployment(ctx: RequestContext, id: string, need: "read" | "write") {
    requireId(id, "deployment");
    const row = await prisma.deployment.findUnique({ where: { id }, select: { workspaceId: true, name: true } });
    if (!row) throw notFound("deployment", id);
    await ctx.access.require(row.workspaceId, need, { type: "deployment", id });
    return row;
  }

  async function authorizeService(ctx: RequestContext, id: string, need: "read" | "write") {
    requireId(id, "service");
    const row = await prisma.service.findUnique({ where: { id }, select: { workspaceId: true, deploymentId: true } });
    if (!row) throw notFound("service", id);
    await ctx.access.require(row.workspaceId, need, { type: "service", id });
    return row;
  }

  /**
   * Whether another service of the workspace claims the domain. Other workspaces' claims are never
   * looked at: an unverified claim blocks nobody, and the answer reveals no other tenant. Between
   * workspaces only proof of control counts (verifyDomain).
   */
  async function domainInUse(tx: Tx, workspaceId: string, host: string, exceptServiceId?: string) {
    const other = await tx.service.findFirst({
      where: { workspaceId, domain: host, ...(exceptServiceId ? { id: { not: exceptServiceId } } : {}) },
      select: { id: true },
    });
    return Boolean(other);
  }

  const domainData = (host: string | null) =>
    host
      ? { domain: host, domainStatus: "PENDING" as const, domainToken: newDomainToken(), domainCheckedAt: null }
      : { domain: null, domainStatus: "NONE" as const, domainToken: null, domainCheckedAt: null };

  /** Start, stop or deploy all services of a deployment, or one. */
  async function act(ctx: RequestContext, action: "deploy" | "start" | "stop", raw: unknown) {
    const input = parseInput(targetInput, raw);
    const deployment = await authorizeDeployment(ctx, input.id, "write");
    if (input.serviceId) requireId(input.serviceId, "service");
    return work.run(async (tx) => {
      const services = await tx.service.findMany({
        where: { deploymentId: input.id, ...(input.serviceId ? { id: input.serviceId } : {}) },
        orderBy: { name: "asc" },
      });
      if (input.serviceId && services.length === 0) throw notFound("service", input.serviceId);
      if (services.length === 0) throw conflict(`Cannot ${action} deployment ${input.id}: it has no services`);
      const rule = SERVICE_ACTIONS[action];
      // One service: the state machine decides. All of them: those that can move do; those already
      // where the action leads are left alone; nothing to move at all is a CONFLICT.
      const movable = input.serviceId
        ? services
        : services.filter((s) => (rule.from as readonly ServiceStatus[]).includes(s.status));
      if (movable.length === 0) {
        const statuses = [...new Set(services.map((s) => s.status))].join(", ");
        throw conflict(`Cannot ${action} deployment ${input.id}: its services are ${statuses}`, { action, statuses });
      }
      const moved = [];
      for (const service of movable) moved.push(await transition(tx, service, action, { bump: action === "deploy" }));
      if (action === "deploy" && !input.serviceId) {
        await tx.deployment.update({ where: { id: input.id }, data: { revision: { increment: 1 } } });
      }
      await audit(tx, ctx, {
        workspaceId: deployment.workspaceId,
        action: `deployment.${action}`,
        targetType: input.serviceId ? "Service" : "Deployment",
        targetId: input.serviceId ?? input.id,
        data: { deploymentId: input.id, services: moved.map((m) => ({ id: m.id, from: m.from, to: m.to })) },
      });
      return { id: input.id };
    });
  }

  return {
    async create(ctx: RequestContext, raw: unknown) {
      const input = parseInput(createInput, raw);
      await ctx.access.require(input.workspaceId, "write");
      const services = input.services ?? [];
      const problems: FieldProblem[] = [];
      const seenNames = new Set<string>();
      const seenDomains = new Set<string>();
      services.forEach((s, i) => {
        if (seenNames.has(s.name)) problems.push({ field: `input.services.${i}.name`, message: "two services cannot share a name" });
        seenNames.add(s.name);
        if (s.domain && seenDomains.has(s.domain)) problems.push({ field: `input.services.${i}.domain`, message: "two services cannot share a domain" });
        if (s.domain) seenDomains.add(s.domain);
      });
      if (problems.length) throw validationError(problems);
      return work.create({ viewer: ctx.viewer, operation: "createDeployment", key: input.idempotencyKey, input }, async (tx) => {
        if (await tx.deployment.findFirst({ where: { workspaceId: input.workspaceId, name: input.name }, select: { id: true } })) {
          throw nameTaken(input.name);
        }
        for (const [i, s] of services.entries()) {
          if (s.domain && (await domainInUse(tx, input.workspaceId, s.domain))) throw domainTaken(s.domain, `input.services.${i}.domain`);
        }
        const deployment = await tx.deployment.create({
          data: {
            workspaceId: input.workspaceId,
            name: input.name,
            services: {
              create: services.map((s) => ({
                workspaceId: input.workspaceId,
                name: s.name,
                image: s.image ?? null,
                command: s.command ?? null,
                env: s.env ?? {},
                ...domainData(s.domain ?? null),
              })),
            },
          },
        });
        await audit(tx, ctx, {
          workspaceId: input.workspaceId,
          action: "deployment.create",
          targetType: "Deployment",
          targetId: deployment.id,
          data: { name: input.name, services: services.map((s) => s.name) },
        });
        noteStatus(tx, "DEPLOYMENT", deployment.id, input.workspaceId);
        return { id: deployment.id };
      }).catch(uniqueViolation);
    },

    async update(ctx: RequestContext, raw: unknown) {
      const input = parseInput(z.object({ id: z.string(), name }), raw);
      const deployment = await authorizeDeployment(ctx, input.id, "write");
      return work.run(async (tx) => {
          const other = await tx.deployment.findFirst({
            where: { workspaceId: deployment.workspaceId, name: input.name, id: { not: input.id } },
            select: { id: true },
          });
          if (other) throw nameTaken(input.name);
          await tx.deployment.update({ where: { id: input.id }, data: { name: input.name } });
          noteStatus(tx, "DEPLOYMENT", input.id, deployment.workspaceId);
          await audit(tx, ctx, {
            workspaceId: deployment.workspaceId,
            action: "deployment.update",
            targetType: "Deployment",
            targetId: input.id,
            data: { name: { from: deployment.name, to: input.name } },
          });
          return { id: input.id };
        })
        .catch(uniqueViolation);
    },

    /** Deletes the deployment and its services; their machines stop them (they leave assignedServices). */
    async remove(ctx: RequestContext, id: string) {
      const deployment = await authorizeDeployment(ctx, id, "write");
      return work.run(async (tx) => {
        const services = await tx.service.findMany({ where: { deploymentId: id }, select: { id: true, machineId: true } });
        const { count } = await tx.deployment.deleteMany({ where: { id } });
        if (count === 0) throw notFound("deployment", id);
        // Its services' logs end with it; its status stream finds it gone and ends.
        for (const service of services) noteService(tx, { id: service.id, workspaceId: deployment.workspaceId, deploymentId: id }, [service.machineId]);
        await noteLogSourcesFinished(
          tx,
          services.map((service) => ({ sourceId: service.id, sourceType: "SERVICE" as const, workspaceId: deployment.workspaceId })),
        );
        await audit(tx, ctx, { workspaceId: deployment.workspaceId, action: "deployment.delete", targetType: "Deployment", targetId: id, data: { name: deployment.name } });
        return { id };
      });
    },

    async addService(ctx: RequestContext, raw: unknown) {
      const input = parseInput(addServiceInput, raw);
      const deployment = await authorizeDeployment(ctx, input.deploymentId, "write");
      return work.create({ viewer: ctx.viewer, operation: "addService", key: input.idempotencyKey, input }, async (tx) => {
        if (await tx.service.findFirst({ where: { deploymentId: input.deploymentId, name: input.name }, select: { id: true } })) {
          throw serviceNameTaken(input.name, "input.name");
        }
        if ((await tx.service.count({ where: { deploymentId: input.deploymentId } })) >= MAX_SERVICES) {
          throw conflict(`Deployment ${input.deploymentId} already has ${MAX_SERVICES} services, the most it can have`);
        }
        if (input.domain && (await domainInUse(tx, deployment.workspaceId, input.domain))) throw domainTaken(input.domain, "input.domain");
        const service = await tx.service.create({
          data: {
            workspaceId: deployment.workspaceId,
            deploymentId: input.deploymentId,
            name: input.name,
            image: input.image ?? null,
            command: input.command ?? null,
            env: input.env ?? {},
            ...domainData(input.domain ?? null),
          },
        });
        await audit(tx, ctx, {
          workspaceId: deployment.workspaceId,
          action: "service.add",
          targetType: "Service",
          targetId: service.id,
          data: { deploymentId: input.deploymentId, name: input.name },
        });
        noteService(tx, service);
        return { id: service.id };
      }).catch(uniqueViolation);
    },

    /**
     * Changes what a service runs (taking effect on its next deploy) or its domain. A new domain
     * starts PENDING with a new token; null clears image, command or domain.
     */
    async updateService(ctx: RequestContext, raw: unknown) {
      const input = parseInput(updateServiceInput, raw);
      const { workspaceId } = await authorizeService(ctx, input.id, "write");
      return work.run(async (tx) => {
          const service = await tx.service.findUnique({ where: { id: input.id } });
          if (!service) throw notFound("service", input.id);
          const data: Prisma.ServiceUncheckedUpdateInput = {};
          if (input.name != null && input.name !== service.name) {
            if (await tx.service.findFirst({ where: { deploymentId: service.deploymentId, name: input.name }, select: { id: true } })) {
              throw serviceNameTaken(input.name, "input.name");
            }
            data.name = input.name;
          }
          if (input.image !== undefined) data.image = input.image;
          if (input.command !== undefined) data.command = input.command;
          if (input.env != null) data.env = input.env;
          const image = input.image !== undefined ? input.image : service.image;
          const cmd = input.command !== undefined ? input.command : service.command;
          if (image == null && cmd == null) throw validationError([{ field: "input.image", message: "give an image or a command" }]);
          if (input.domain !== undefined && input.domain !== service.domain) {
            if (input.domain && (await domainInUse(tx, workspaceId, input.domain, service.id))) throw domainTaken(input.domain, "input.domain");
            Object.assign(data, domainData(input.domain));
          }
          await tx.service.update({ where: { id: service.id }, data });
          noteService(tx, service, [service.machineId]);
          await audit(tx, ctx, {
            workspaceId,
            action: "service.update",
            targetType: "Service",
            targetId: service.id,
            data: { changed: Object.keys(data).filter((k) => k !== "domainToken") },
          });
          return { id: service.id };
        })
        .catch(uniqueViolation);
    },

    async removeService(ctx: RequestContext, id: string) {
      const { workspaceId, deploymentId } = await authorizeService(ctx, id, "write");
      return work.run(async (tx) => {
        const machine = await tx.service.findUnique({ where: { id }, select: { machineId: true } });
        const { count } = await tx.service.deleteMany({ where: { id } });
        if (count === 0) throw notFound("service", id);
        noteService(tx, { id, workspaceId, deploymentId }, [machine?.machineId]);
        await noteLogSourcesFinished(tx, [{ sourceId: id, sourceType: "SERVICE", workspaceId }]);
        await audit(tx, ctx, { workspaceId, action: "service.remove", targetType: "Service", targetId: id, data: { deploymentId } });
        return { deploymentId };
      });
    },

    deploy: (ctx: RequestContext, raw: unknown) => act(ctx, "deploy", raw),
    start: (ctx: RequestContext, raw: unknown) => act(ctx, "start", raw),
    stop: (ctx: RequestContext, raw: unknown) => act(ctx, "stop", raw),

    /**
     * Looks up the TXT record `_spindle-challenge.<domain>` (a real DNS query) and compares it with
     * the service's token: VERIFIED on a match, FAILED otherwise, with the reason in the answer.
     * A domain is VERIFIED for one service at a time: whoever proves control now takes it, and a
     * service elsewhere that held it goes back to PENDING (its owner re-verifies if they still can).
     */
    async verifyDomain(ctx: RequestContext, id: string) {
      const { workspaceId } = await authorizeService(ctx, id, "write");
      const service = await prisma.service.findUnique({ where: { id } });
      if (!service) throw notFound("service", id);
      if (!service.domain || !service.domainToken) {
        throw conflict(`Service ${id} has no domain to verify; set one with updateService first`, { domainStatus: service.domainStatus });
      }
      const recordName = challengeRecordName(service.domain);
      const { verified, reason } = await lookUpChallenge(recordName, service.domainToken, config.domain.dnsServers);
      const host = service.domain;
      return work.run(async (tx) => {
        if (verified) {
          // Serializes verifications of one domain, so two services never both end VERIFIED.
          await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtext(${`service-domain:${host}`}))::text`;
          const previous = await tx.service.findMany({
            where: { domain: host, domainStatus: "VERIFIED", id: { not: id } },
            select: { id: true, workspaceId: true, deploymentId: true },
          });
          if (previous.length > 0) {
            await tx.service.updateMany({ where: { id: { in: previous.map((p) => p.id) } }, data: { domainStatus: "PENDING", domainCheckedAt: new Date() } });
            for (const p of previous) noteService(tx, p);
          }
        }
        // The domain (and so the token) may have changed while DNS answered: then this result is moot.
        const { count } = await tx.service.updateMany({
          where: { id, domain: service.domain, domainToken: service.domainToken },
          data: { domainStatus: verified ? "VERIFIED" : "FAILED", domainCheckedAt: new Date() },
        });
        if (count === 0) throw conflict(`The domain of service ${id} changed while it was being verified; verify again`);
        noteService(tx, service);
        await audit(tx, ctx, {
          workspaceId,
          action: "service.verifyDomain",
          targetType: "Service",
          targetId: id,
          data: { domain: service.domain, verified, ...(reason ? { reason } : {}) },
        });
        return { id, verified, reason };
      });
    },

    assignedArgs(ctx: RequestContext) {
      const machine = requireMachine(ctx.viewer);
      return {
        where: { machineId: machine.machineId, workspaceId: machine.workspaceId, status: { in: [...LIVE_SERVICE_STATUSES] } },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      } satisfies Prisma.ServiceFindManyArgs;
    },

    /** Like reportWorkerStatus: the service's own machine, the current revision; a repeat changes nothing. */
    async reportStatus(ctx: RequestContext, raw: unknown) {
      const machine = requireMachine(ctx.viewer);
      const input = parseInput(reportInput, raw);
      requireId(input.serviceId, "service");
      return work.run(async (tx) => {
        const service = await tx.service.findFirst({ where: { id: input.serviceId, machineId: machine.machineId, workspaceId: machine.workspaceId } });
        if (!service) throw notFound("service", input.serviceId);
        if (service.revision !== input.revision) throw staleRevision(service.id, input.revision, service.revision);
        if (input.status === "RESTARTED") return restarted(tx, ctx, service, input.reason ?? "restarted after it exited");
        const action = input.status === "RUNNING" ? "running" : "fail";
        if (service.status === SERVICE_ACTIONS[action].to) {
          unaudited(tx, "unchanged");
          return { id: service.id };
        }
        await transition(tx, service, action, { reason: input.reason, revision: input.revision });
        await audit(tx, ctx, {
          workspaceId: service.workspaceId,
          action: "service.report",
          targetType: "Service",
          targetId: service.id,
          data: { revision: input.revision, status: input.status, ...(input.reason ? { reason: input.reason } : {}) },
        });
        return { id: service.id };
      });
    },

    /** Services deployed while no machine qualified get one now (as workers.placeWaiting). */
    async placeWaiting(workspaceId: string) {
      const waiting = await prisma.service.findMany({
        where: { workspaceId, status: "DEPLOYING", machineId: null },
        select: { id: true },
        orderBy: { createdAt: "asc" },
      });
      let placed = 0;
      for (const { id } of waiting) {
        await work.run(async (tx) => {
          unaudited(tx, "server");
          const machineId = await placeOn(tx, workspaceId, null, offlineAfter());
          if (!machineId) return;
          const [moved] = await tx.service.updateManyAndReturn({
            where: { id, status: "DEPLOYING", machineId: null },
            data: { machineId, statusReason: null },
            select: { id: true, workspaceId: true, deploymentId: true },
          });
          const count = moved ? 1 : 0;
          if (moved) noteService(tx, moved, [machineId]);
          placed += count;
        });
      }
      return placed;
    },
  };
}

const staleRevision = (id: string, reported: number, current: number) =>
  conflict(`Service ${id} is at revision ${current}; the report is for revision ${reported}. Stop running the old revision.`, {
    revision: current,
    fields: [{ field: "input.revision", message: `the current revision is ${current}` }],
  });

async function lookUpChallenge(recordName: string, token: string, servers: string[]): Promise<{ verified: boolean; reason: string | null }> {
  const resolver = new Resolver({ timeout: 5000, tries: 2 });
  if (servers.length > 0) resolver.setServers(servers);
  let records: string[][];
  try {
    records = await resolver.resolveTxt(recordName);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "ENODATA") return { verified: false, reason: `There is no TXT record at ${recordName}` };
    return { verified: false, reason: `Could not look up the TXT record at ${recordName} (${code ?? "lookup error"}); try again later` };
  }
  // A long TXT value arrives in 255-byte chunks; each record is the chunks joined.
  const values = records.map((chunks) => chunks.join(""));
  if (values.includes(token)) return { verified: true, reason: null };
  return { verified: false, reason: `The TXT record at ${recordName} does not hold this service's token` };
}

export type DeploymentService = ReturnType<typeof createDeploymentService>;
