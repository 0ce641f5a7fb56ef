-- AlterTable
ALTER TABLE "Service" ADD COLUMN     "lastRestartAt" TIMESTAMP(3),
ADD COLUMN     "restartCount" INTEGER NOT NULL DEFAULT 0;

