// Ending a log source: when its task finishes or its worker or service is gone, no line will follow.
// Marked in the finishing transaction, announced after it commits, so `logs` streams end cleanly.
import type { LogSourceType, Prisma } from "../../generated/prisma/client.js";
import type { PubSubService } from "../../infra/pubsub.js";

export interface LogSourceRef {
  sourceId: string;
  sourceType: LogSourceType;
  workspaceId: string;
}

/** Marks the sources finished, creating the row of a source that never logged (so a later reader knows too). */
export async function finishLogSources(tx: Pick<Prisma.TransactionClient, "logSource">, sources: LogSourceRef[]): Promise<void> {
  if (sources.length === 0) return;
  const finishedAt = new Date();
  await tx.logSource.createMany({ data: sources.map((s) => ({ ...s, finishedAt })), skipDuplicates: true });
  await tx.logSource.updateMany({ where: { sourceId: { in: sources.map((s) => s.sourceId) }, finishedAt: null }, data: { finishedAt } });
}

/** After commit: tells every subscriber of these sources that the stream is over. */
export function announceLogSourcesFinished(pubsub: PubSubService, sourceIds: string[]): void {
  for (const sourceId of sourceIds) pubsub.pubsub.publish("logs", sourceId, { sourceId, finished: true });
}
