-- AlterTable
ALTER TABLE "Workspace" ADD COLUMN     "lastEventCursor" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Machine" ADD COLUMN     "announcedOnline" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "WorkspaceEvent" (
    "workspaceId" UUID NOT NULL,
    "cursor" BIGINT NOT NULL,
    "type" TEXT NOT NULL,
    "subjectType" TEXT,
    "subjectId" TEXT,
    "data" JSONB,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "WorkspaceEvent_pkey" PRIMARY KEY ("workspaceId","cursor")
);

-- CreateIndex
CREATE INDEX "WorkspaceEvent_workspaceId_type_cursor_idx" ON "WorkspaceEvent"("workspaceId", "type", "cursor");

-- AddForeignKey
ALTER TABLE "WorkspaceEvent" ADD CONSTRAINT "WorkspaceEvent_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

