// The composition root: every service of the server is built here, once, from the infrastructure
// (config, database, pub/sub, logger, signing key). Each module owns its rules and its tables;
// where one needs another's, it is handed a capability here (never an import of its internals).
// Resolvers call these services, and the REST layer reaches them through the same GraphQL operations.
// Per-request state (access, loaders) is made by the context factory in app.ts, not here.
import { createAuthenticator } from "../auth/authenticate.js";
import { createCredentialCache } from "../auth/credential-cache.js";
import { createTokenService, type SigningKey } from "../auth/tokens.js";
import type { Config } from "../config.js";
import type { Database } from "../infra/db.js";
import type { Logger } from "../infra/logger.js";
import { createMailer } from "../infra/mailer.js";
import type { PubSubService } from "../infra/pubsub.js";
import { createLiveStreams } from "../infra/streams.js";
import { createAccountLimits, createAccountService } from "./account/account.service.js";
import { createUserAdminService } from "./account/user-admin.js";
import { createAgentService } from "./agent/agent.service.js";
import { createApiKeyService } from "./api-key/api-key.service.js";
import { createAuditService } from "./audit/audit.service.js";
import { createDeploymentService } from "./deployment/deployment.service.js";
import { detachMachineServices } from "./deployment/machine-loss.js";
import { createEventService } from "./event/event.service.js";
import { createFlowService } from "./flow/flow.service.js";
import { createLogService } from "./log/log.service.js";
import { createAssignmentStreams } from "./machine/assignments.js";
import { createMachineService } from "./machine/machine.service.js";
import { createLive, createStreamGuards } from "./shared/live.js";
import { createUnitOfWork } from "./shared/unit-of-work.js";
import { leaseRenewal, releaseMachine } from "./task/task-claims.js";
import { createTaskService } from "./task/task.service.js";
import { failMachineWorkers } from "./worker/machine-loss.js";
import { createWorkerService } from "./worker/worker.service.js";
import { createWorkspaceService } from "./workspace/workspace.service.js";

export interface Infrastructure {
  config: Config;
  db: Database;
  pubsub: PubSubService;
  log: Logger;
  signingKey: SigningKey;
}

export function createServices(infra: Infrastructure) {
  const { config, db, pubsub, log } = infra;
  const prisma = db.prisma;

  // Credentials: tokens are signed and verified by one service; the cache forgets a credential
  // when its notice arrives (app.ts listens for them).
  const tokens = createTokenService({
    key: infra.signingKey,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    ttlSeconds: config.auth.accessTokenTtlSeconds,
  });
  const credentialCache = createCredentialCache();
  const authenticate = createAuthenticator({ prisma, tokens, cache: credentialCache });
  const mailer = createMailer({ prisma, smtpUrl: config.mail.smtpUrl, from: config.mail.from, log });

  // Live: every stream runs on one engine (it ends them all on shutdown); every write goes through
  // the one unit of work, which announces what committed through the one announcer.
  const streams = createLiveStreams({ pubsub, log });
  const live = createLive(pubsub, log);
  const work = createUnitOfWork({ prisma, live });
  const deps = { prisma, pubsub, config, log, work, mailer };
  // The one guard every live stream is checked by (logs, events, status, account events).
  const guards = createStreamGuards({ prisma, db, streams });

  const accounts = createAccountService({
    prisma,
    work,
    tokens,
    mailer,
    limits: createAccountLimits({ redis: pubsub.redis, prefix: config.redisKeyPrefix }, config.auth),
    refreshTokenTtlSeconds: config.auth.refreshTokenTtlSeconds,
    accessTokenMaxTtlSeconds: config.auth.accessTokenMaxTtlSeconds,
    signupConfirmation: config.auth.signupConfirmation,
    log,
  });
  const workers = createWorkerService(deps);
  const deployments = createDeploymentService(deps);
  const agents = createAgentService(deps);
  const tasks = createTaskService(deps, { agentTarget: agents.target });
  // A machine that becomes able to take work picks up the workers and services that wait for one.
  // It writes only machine rows: what a machine holds is renewed or released by the module that owns it.
  const machines = createMachineService(deps, {
    capacityAdded: async (workspaceId) => {
      await workers.placeWaiting(workspaceId);
      await deployments.placeWaiting(workspaceId);
    },
    leaseRenewal,
    releaseTasks: releaseMachine,
    failWorkers: failMachineWorkers,
    detachServices: detachMachineServices,
  });

  const services = {
    accounts,
    apiKeys: createApiKeyService({ prisma, work }),
    /** Short-lived machine tokens (api-web's worker JWT) for a machine's current credential. */
    machineTokens: { issue: (machine: { machineId: string; credentialHash: string }) => tokens.signMachineToken(machine) },
    userAdmin: createUserAdminService({ prisma, work, endSessionsOf: accounts.endSessionsOf }),
    workspaces: createWorkspaceService(deps),
    machines,
    workers,
    agents,
    tasks,
    flows: createFlowService(deps, { insertTask: tasks.insert }),
    deployments,
    logs: createLogService({ ...deps, db, streams, guards }),
    audit: createAuditService(deps),
    /** The workspace event and status streams; `events.stop()` ends the announcing of notices (server stopping). */
    events: createEventService({ ...deps, live, streams, guards }, { machineStatusOf: machines.statusOf }),
    /** The machines' push channel (machineAssignments). */
    assignments: createAssignmentStreams({ ...deps, db, streams, guards }),
  };
  return { services, authenticate, credentialCache, mailer, streams };
}

export type Services = ReturnType<typeof createServices>["services"];
