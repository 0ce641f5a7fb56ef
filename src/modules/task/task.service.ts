// Tasks: work that runs once (api-web tasks with stages, api-v1 tasks, flow runs). People create,
// edit, cancel, retry and confirm suspended stages; machines claim the work that fits them and report
// on it while they hold the attempt's lease.
//
// This file is the module's entry: it builds the parts and offers them as one service.
// - task-insert.ts: a new task's row, stages and first event (also for flow runs), and the live
//   announcement of a task's change.
// - task-commands.ts: what people do (create, update, cancel, retry, confirmStage, stats).
// - task-claims.ts: what machines do (claim, start, reportStage, complete, fail, addEvent) under
//   the attempt's lease, and what the machine module asks of tasks (leaseRenewal, releaseMachine).
// - task-common.ts: the task event log, the refusal of an illegal transition and the closing of a
//   task's open stages, used by both sides.
import type { DomainDeps } from "../shared/deps.js";
import { createTaskClaims } from "./task-claims.js";
import { createTaskCommands, type TaskCollaborators } from "./task-commands.js";
import { insertTask } from "./task-insert.js";

export type { TaskCollaborators } from "./task-commands.js";

export function createTaskService(deps: DomainDeps, collaborators: TaskCollaborators) {
  return {
    /** For other modules' transactions (flow runs): inserts a task, its stages and first event; the caller audits. */
    insert: insertTask,
    ...createTaskCommands(deps, collaborators),
    ...createTaskClaims(deps),
  };
}

export type TaskService = ReturnType<typeof createTaskService>;
