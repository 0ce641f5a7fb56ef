-- AlterTable
ALTER TABLE "User" ADD COLUMN     "dotfilesRepo" TEXT,
ALTER COLUMN "email" DROP NOT NULL;

