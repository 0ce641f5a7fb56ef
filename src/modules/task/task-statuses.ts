// The task module's named sets of statuses, the one place each is written down. Other modules
// (machines, live streams) ask with these; this file imports nothing of theirs.
import type { TaskStatus } from "../../generated/prisma/client.js";
import { sqlLiterals } from "../shared/sql.js";

/** A machine holds the task (and its lease): a draining machine stays DRAINING, heartbeats renew the lease. */
export const HELD_TASK_STATUSES: TaskStatus[] = ["ASSIGNED", "RUNNING", "SUSPENDED"];
/** The task is over: nothing changes it but a retry. */
export const FINISHED_TASK_STATUSES: TaskStatus[] = ["SUCCEEDED", "FAILED", "CANCELLED"];

/** HELD_TASK_STATUSES for raw statements: `"status" IN (${HELD_TASK_STATUSES_SQL})`. */
export const HELD_TASK_STATUSES_SQL = sqlLiterals(HELD_TASK_STATUSES);
