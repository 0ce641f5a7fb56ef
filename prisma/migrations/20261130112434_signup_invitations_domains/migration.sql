-- CreateEnum
CREATE TYPE "InvitationStatus" AS ENUM ('PENDING', 'ACCEPTED', 'DECLINED', 'REVOKED');

-- CreateTable
CREATE TABLE "PendingRegistration" (
    "id" UUID NOT NULL,
    "email" TEXT NOT NULL,
    "username" TEXT NOT NULL,
    "displayName" TEXT,
    "passwordHash" TEXT NOT NULL,
    "codeHash" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "consumedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PendingRegistration_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "WorkspaceInvitation" (
    "id" UUID NOT NULL,
    "workspaceId" UUID NOT NULL,
    "email" TEXT NOT NULL,
    "role" "WorkspaceRole" NOT NULL,
    "invitedById" UUID,
    "status" "InvitationStatus" NOT NULL DEFAULT 'PENDING',
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "respondedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "WorkspaceInvitation_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "PendingRegistration_email_idx" ON "PendingRegistration"("email");

-- CreateIndex
CREATE INDEX "PendingRegistration_createdAt_idx" ON "PendingRegistration"("createdAt");

-- CreateIndex
CREATE INDEX "WorkspaceInvitation_email_status_idx" ON "WorkspaceInvitation"("email", "status");

-- CreateIndex
CREATE INDEX "WorkspaceInvitation_workspaceId_createdAt_idx" ON "WorkspaceInvitation"("workspaceId", "createdAt");

-- Sign-ups still waiting for their code move to PendingRegistration (their latest live code, with
-- its attempts); the unconfirmed User rows that held them go. Nothing else referred to those rows:
-- an unconfirmed account could not sign in, hold keys or be added to a workspace.
INSERT INTO "PendingRegistration" ("id", "email", "username", "displayName", "passwordHash", "codeHash", "attempts", "expiresAt", "createdAt")
SELECT DISTINCT ON (u."id") c."id", u."email", u."username", u."displayName", u."passwordHash", c."codeHash", c."attempts", c."expiresAt", c."createdAt"
FROM "User" u JOIN "EmailCode" c ON c."userId" = u."id"
WHERE u."emailVerifiedAt" IS NULL AND c."purpose" = 'REGISTRATION' AND c."consumedAt" IS NULL AND c."expiresAt" > now()
ORDER BY u."id", c."createdAt" DESC;

DELETE FROM "User" WHERE "emailVerifiedAt" IS NULL;

-- DropForeignKey
ALTER TABLE "EmailCode" DROP CONSTRAINT "EmailCode_userId_fkey";

-- DropTable
DROP TABLE "EmailCode";

-- DropEnum
DROP TYPE "EmailCodePurpose";

-- Service domains are no longer unique on first claim: VERIFIED ones are kept unique by
-- verifyDomain (see deployment.service.ts).
DROP INDEX "Service_domain_key";

-- CreateIndex
CREATE INDEX "Service_domain_idx" ON "Service"("domain");

-- AddForeignKey
ALTER TABLE "WorkspaceInvitation" ADD CONSTRAINT "WorkspaceInvitation_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "WorkspaceInvitation" ADD CONSTRAINT "WorkspaceInvitation_invitedById_fkey" FOREIGN KEY ("invitedById") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

