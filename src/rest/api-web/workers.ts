// api-web's worker API (/api/workers/*): a machine ("worker") registers with a one-time enrollment
// token and gets a worker JWT (Spindle's short-lived machine token) and a recovery secret; it
// refreshes the JWT while it is valid, and recovers with the secret and the machineId it chose at
// registration once it is not. The JWT stands for the machine's credential: rotating or recovering
// it, decommissioning or rejecting the machine ends every JWT issued before.
import { z } from "zod";
import { ApiWorkerRecoverDocument, ApiWorkerRefreshDocument, ApiWorkerRegisterDocument } from "../../generated/rest-api-web-graphql.js";
import type { Route } from "../route.js";
import { dialectRoute, type FieldNames } from "../shared.js";
import { API_WEB_FIELDS, time } from "./common.js";

const WORKER_FIELDS: FieldNames = [
  ["input.externalId", "body.machineId"],
  ["input.token", "body.token"],
];
const workerRoute = dialectRoute("api-web", [...WORKER_FIELDS, ...API_WEB_FIELDS]);

const secretsShape = z.object({
  id: z.string().describe("Spindle's id for the machine"),
  machineId: z.string().describe("The id the worker chose for itself"),
  name: z.string(),
  workerJwt: z.string().describe("Send as Authorization: Bearer <workerJwt>; refresh it before expiresAt"),
  expiresAt: time,
  recoverySecret: z.string().describe("spr_...: shown only here, once; POST /api/workers/recover trades it for a new JWT"),
});

type Secrets = {
  recoverySecret: string;
  accessToken: { token: string; expiresAt: string };
  machine: { id: string; externalId?: string | null; name: string };
};
const secretsOut = (s: Secrets): z.infer<typeof secretsShape> => ({
  id: s.machine.id,
  machineId: s.machine.externalId ?? s.machine.id,
  name: s.machine.name,
  workerJwt: s.accessToken.token,
  expiresAt: s.accessToken.expiresAt,
  recoverySecret: s.recoverySecret,
});

/** Hardware facts a worker sends beside its name: kept whole in the machine's hardware JSON. */
const HARDWARE_KEYS = ["hostname", "os", "arch", "cpuCores", "cpus", "memoryMb", "memoryBytes", "totalMemory", "gpus", "version", "agentVersion"] as const;

export const apiWebWorkerRoutes: Route[] = [
  workerRoute({
    method: "GET",
    path: "/api/workers/healthz",
    summary: "Worker API health: the server's status and how many workers (machines of every workspace) were heard from lately; no authentication",
    auth: ["none"],
    response: z.object({ status: z.enum(["ok", "degraded", "down"]), connectedWorkers: z.int() }),
    async handler({ health, connectedMachines }) {
      const [{ status }, connectedWorkers] = await Promise.all([health(), connectedMachines()]);
      return { status, connectedWorkers };
    },
  }),
  workerRoute({
    method: "POST",
    path: "/api/workers/register",
    summary:
      "Register a worker with a one-time enrollment token (worker token). Body {machineId, token, name, capabilities?, hardware?, ...hardware facts}; answers the worker JWT and a recovery secret",
    auth: ["none"],
    status: 201,
    body: z
      .object({
        machineId: z.string("is required: the id this worker chose for itself").min(1, "must not be empty"),
        token: z.string("is required: the worker token").min(1, "must not be empty"),
        name: z.string().nullish().describe("Defaults to machineId"),
        capabilities: z.array(z.string("must be a string")).nullish(),
        labels: z.array(z.string("must be a string")).nullish(),
        hardware: z.record(z.string(), z.unknown(), "must be a JSON object").nullish(),
      })
      .catchall(z.unknown()),
    response: secretsShape,
    async handler({ body, run }) {
      const facts = Object.fromEntries(HARDWARE_KEYS.filter((key) => body[key] !== undefined).map((key) => [key, body[key]]));
      const input = {
        token: body.token,
        externalId: body.machineId,
        name: body.name ?? body.machineId,
        capabilities: body.capabilities,
        labels: body.labels,
        hardware: body.hardware || Object.keys(facts).length ? { ...facts, ...body.hardware } : undefined,
      };
      return secretsOut((await run(ApiWorkerRegisterDocument, { input })).registerMachine);
    },
  }),
  workerRoute({
    method: "POST",
    path: "/api/workers/refresh-token",
    summary: "A fresh worker JWT for a worker holding a valid one (Authorization: Bearer <workerJwt>)",
    auth: ["bearer"],
    response: z.object({ workerJwt: z.string(), expiresAt: time }),
    async handler({ run }) {
      const { refreshMachineAccessToken: token } = await run(ApiWorkerRefreshDocument, {});
      return { workerJwt: token.token, expiresAt: token.expiresAt };
    },
  }),
  workerRoute({
    method: "POST",
    path: "/api/workers/recover",
    summary:
      "Recover a worker that lost its JWT: body {machineId (as it registered), recoverySecret}; answers a new JWT and a new recovery secret (the old ones stop working)",
    auth: ["none"],
    body: z.object({
      machineId: z.string("is required: the id this worker chose at registration").min(1, "must not be empty"),
      recoverySecret: z.string("is required").min(1, "must not be empty"),
    }),
    response: secretsShape,
    async handler({ body, run }) {
      const input = { externalId: body.machineId, recoverySecret: body.recoverySecret };
      return secretsOut((await run(ApiWorkerRecoverDocument, { input })).recoverMachineCredential);
    },
  }),
];
