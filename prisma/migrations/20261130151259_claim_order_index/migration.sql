-- DropIndex
DROP INDEX "Task_workspaceId_status_priorityRank_createdAt_idx";

-- CreateIndex
CREATE INDEX "Task_workspaceId_status_priorityRank_createdAt_id_idx" ON "Task"("workspaceId", "status", "priorityRank" DESC, "createdAt", "id");

