// The worker module's named sets of statuses (and the services' alike), the one place each is
// written down. Other modules (machines, placement, live streams) ask with these.
import type { ServiceStatus, WorkerStatus } from "../../generated/prisma/client.js";
import { sqlLiterals } from "../shared/sql.js";

export const WORKER_STATUSES = ["DEPLOYING", "RUNNING", "STOPPED", "FAILED", "DESTROYED"] as const satisfies readonly WorkerStatus[];
/** A worker that should be running on its machine: it keeps a draining machine DRAINING and takes its room. */
export const LIVE_WORKER_STATUSES = ["DEPLOYING", "RUNNING"] as const satisfies readonly WorkerStatus[];
/** A service that should be running on its machine, as a live worker. */
export const LIVE_SERVICE_STATUSES = ["DEPLOYING", "RUNNING"] as const satisfies readonly ServiceStatus[];

/** The live sets for raw statements: `"status" IN (${LIVE_WORKER_STATUSES_SQL})`. */
export const LIVE_WORKER_STATUSES_SQL = sqlLiterals(LIVE_WORKER_STATUSES);
