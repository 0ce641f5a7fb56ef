// api-v1's task as both the task routes (tasks.ts) and a worker's pending tasks (workers.ts) answer
// it, the words api-v1 uses for task statuses and priorities, and the task list both read.
import { z } from "zod";
import { ApiV1TaskListDocument, type ApiV1TaskPartsFragment, type TaskPriority, type TaskStatus } from "../../generated/rest-api-v1-graphql.js";
import type { Run } from "../route.js";
import { collect } from "../shared.js";
import { apiV1Enum, lower, time } from "./common.js";

// ---- Statuses and priorities -----------------------------------------------------------------

/** Spindle's task statuses, in their life's order; api-v1 shows them lower-case, SUCCEEDED as "completed". */
export const TASK_STATUSES = ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED"] as const satisfies readonly TaskStatus[];
export const API_V1_TASK_STATUSES = ["pending", "assigned", "running", "suspended", "completed", "failed", "cancelled"] as const;
export type ApiV1TaskStatus = (typeof API_V1_TASK_STATUSES)[number];
export const taskStatusOut = (status: TaskStatus) => apiV1Enum(status) as ApiV1TaskStatus;

export const TASK_PRIORITIES = ["LOW", "NORMAL", "HIGH", "URGENT"] as const satisfies readonly TaskPriority[];

/** What api-v1 clients send as a priority (any case): Spindle's four, and the two other words they use for two of them. */
const PRIORITY_WORDS: Record<string, TaskPriority> = {
  low: "LOW",
  normal: "NORMAL",
  medium: "NORMAL",
  high: "HIGH",
  urgent: "URGENT",
  critical: "URGENT",
};
export const PRIORITY_CHOICES = "low, normal (or medium), high, urgent (or critical)";

/** A priority as a client wrote it, or undefined for a word api-v1 does not use. */
export const priorityIn = (word: string): TaskPriority | undefined => PRIORITY_WORDS[word.trim().toLowerCase()];

// ---- The task --------------------------------------------------------------------------------

export const taskShape = z.object({
  id: z.string().describe("Spindle's task id (a UUID)"),
  title: z.string(),
  description: z.string().nullable(),
  instructions: z.string().nullable(),
  status: z.enum(API_V1_TASK_STATUSES).describe("completed: finished well (Spindle's SUCCEEDED)"),
  priority: z.enum(TASK_PRIORITIES.map(lower) as ["low", "normal", "high", "urgent"]),
  agent_id: z.string().nullable().describe("The agent the task is for: only that agent's worker (machine) claims it"),
  worker_id: z
    .string()
    .nullable()
    .describe("The worker (machine) that runs or ran it; before a worker took it, the worker it is bound to (by agent_id, or created for it), else null"),
  required_tools: z.array(z.string()).describe("Capabilities a worker needs to take the task"),
  deadline: time.nullable(),
  result: z.unknown().describe("What the worker reported on completion (JSON), else null"),
  error: z.string().nullable().describe("Why it failed, or 'Cancelled: <reason>'"),
  created_at: time,
  updated_at: time,
  started_at: time.nullable(),
  completed_at: time.nullable().describe("When it finished: completed, failed or cancelled"),
});
export type TaskOut = z.infer<typeof taskShape>;

export const taskOut = (task: ApiV1TaskPartsFragment): TaskOut => ({
  id: task.id,
  title: task.title,
  description: task.description ?? null,
  instructions: task.instructions ?? null,
  status: taskStatusOut(task.status),
  priority: lower(task.priority),
  agent_id: task.targetAgentId ?? null,
  // A task only runs where it is bound, so the two never disagree: the holder wins once there is one.
  worker_id: task.machine?.id ?? task.targetMachineId ?? null,
  required_tools: task.requiredCapabilities,
  deadline: task.deadline ?? null,
  result: task.output ?? null,
  error: task.error ?? null,
  created_at: task.createdAt,
  updated_at: task.updatedAt,
  started_at: task.startedAt ?? null,
  completed_at: task.finishedAt ?? null,
});

// ---- The list --------------------------------------------------------------------------------

export interface TaskFilters {
  status?: TaskStatus[];
  priority?: TaskPriority[];
  targetAgentId?: string;
  targetMachineId?: string;
}

/** The workspace's tasks, newest first: up to `limit` (every one without), after skipping `offset`. */
export async function workspaceTasks(run: Run, workspaceId: string, filters: TaskFilters, limit?: number, offset?: number): Promise<TaskOut[]> {
  const tasks = await collect(async (page) => (await run(ApiV1TaskListDocument, { workspaceId, ...filters, ...page })).workspace.tasks, limit, offset);
  return tasks.map(taskOut);
}
