-- AlterTable
ALTER TABLE "User" ADD COLUMN     "legacyId" SERIAL NOT NULL,
ADD COLUMN     "plan" TEXT NOT NULL DEFAULT 'free';

-- AlterTable
ALTER TABLE "Workspace" ADD COLUMN     "legacyId" SERIAL NOT NULL;

-- AlterTable
ALTER TABLE "GraphBlock" ADD COLUMN     "extra" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "GraphEdge" ADD COLUMN     "extra" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "Flow" ADD COLUMN     "definitionText" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "User_legacyId_key" ON "User"("legacyId");

-- CreateIndex
CREATE UNIQUE INDEX "Workspace_legacyId_key" ON "Workspace"("legacyId");

