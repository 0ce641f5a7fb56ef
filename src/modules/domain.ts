// The domain services, built once per server from the shared dependencies. Each module owns its
// rules; resolvers call these, and the REST layer reaches them through the same GraphQL operations.
import { createAgentService } from "./agent/agent.service.js";
import { createAuditService } from "./audit/audit.service.js";
import { createDeploymentService } from "./deployment/deployment.service.js";
import { createEventService } from "./event/event.service.js";
import { createFlowService } from "./flow/flow.service.js";
import { createLogService } from "./log/log.service.js";
import { createAssignmentStreams } from "./machine/assignments.js";
import { createMachineService } from "./machine/machine.service.js";
import type { Database } from "../infra/db.js";
import type { LiveStreams } from "../infra/streams.js";
import type { MailingDeps } from "./shared/deps.js";
import { createLive, createStreamGuards } from "./shared/live.js";
import { createTaskService } from "./task/task.service.js";
import { createWorkerService } from "./worker/worker.service.js";
import { createWorkspaceService } from "./workspace/workspace.service.js";

/**
 * Log ingestion writes without Prisma (`db`); live streams run on the server's one engine
 * (`streams`); every service announces its committed changes through the one `live` made here.
 */
export function createDomainServices(base: Omit<MailingDeps, "live"> & { db: Pick<Database, "withConnection">; streams: LiveStreams }) {
  const live = createLive(base.pubsub, base.log);
  const deps = { ...base, live };
  // The one guard every live stream is checked by (logs, events, status, account events).
  const guards = createStreamGuards(deps);
  const workers = createWorkerService(deps);
  const deployments = createDeploymentService(deps);
  const agents = createAgentService(deps);
  const tasks = createTaskService(deps, { agentTarget: agents.target });
  // A machine that becomes able to take work picks up the workers and services that wait for one.
  const machines = createMachineService(deps, {
    capacityAdded: async (workspaceId) => {
      await workers.placeWaiting(workspaceId);
      await deployments.placeWaiting(workspaceId);
    },
  });
  return {
    workspaces: createWorkspaceService(deps),
    machines,
    workers,
    agents,
    tasks,
    flows: createFlowService(deps, { insertTask: tasks.insert }),
    deployments,
    logs: createLogService({ ...deps, guards }),
    audit: createAuditService(deps),
    /** Live streams and machine presence; `events.start()` / `events.stop()` run its periodic sweep (stop also ends `live`). */
    events: createEventService({ ...deps, guards }, { machineStatusOf: machines.statusOf }),
    /** The machines' push channel (machineAssignments). */
    assignments: createAssignmentStreams({ ...deps, guards }),
  };
}

export type DomainServices = ReturnType<typeof createDomainServices>;
