-- AlterTable
ALTER TABLE "LogLine" ADD COLUMN     "step" TEXT;

