// The task module's published limits and stage shape: what other modules (flows) validate their
// own input against before asking the task module to make a task. Imports nothing of theirs.
import { z } from "zod";
import { jsonValue, name } from "../../schema/validation.js";

const KIB = 1024;
export const MAX_CLAIM = 20;
export const MAX_INPUT_BYTES = 256 * KIB;
export const MAX_OUTPUT_BYTES = 256 * KIB;
export const MAX_PROMPT_BYTES = 16 * KIB;
export const MAX_EVENT_DATA_BYTES = 64 * KIB;
export const MAX_STAGES = 100;

/** One stage of a task, as given at creation (or by a project's pipeline, or a flow's steps). */
export const stageDefinition = z.object({
  name: name(200),
  requiresConfirmation: z.boolean().nullish(),
  prompt: jsonValue(MAX_PROMPT_BYTES).nullish(),
});
export type StageDefinition = z.output<typeof stageDefinition>;
