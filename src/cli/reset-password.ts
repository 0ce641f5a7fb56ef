// `spindle admin reset-password <login>`: for an operator with access to the database (the data
// folder or DATABASE_URL), when an account's password is lost, the first administrator's included.
// One transaction: the new password's hash, every session of the account ended (servers forget
// them at commit: credential notices), optionally two-factor off, and an audit entry by SYSTEM.
import { hashPassword } from "../auth/passwords.js";
import { randomToken } from "../auth/secrets.js";
import { anonymous } from "../auth/viewer.js";
import type { PrismaClient } from "../generated/prisma/client.js";
import { createUnitOfWork } from "../modules/shared/unit-of-work.js";
import { audit } from "../modules/shared/audit.js";

export class UnknownLoginError extends Error {}

export async function resetPassword(prisma: PrismaClient, login: string, options: { disableTotp?: boolean } = {}) {
  const wanted = login.trim();
  const user = await prisma.user.findFirst({
    where: { OR: [{ email: { equals: wanted, mode: "insensitive" } }, { username: { equals: wanted, mode: "insensitive" } }] },
    select: { id: true, email: true, username: true },
  });
  if (!user) throw new UnknownLoginError(`No account has the email or username "${wanted}"`);
  const password = randomToken(15);
  const passwordHash = await hashPassword(password);
  const ended = await createUnitOfWork({ prisma }).run(async (tx) => {
    await tx.user.update({
      where: { id: user.id },
      data: { passwordHash, ...(options.disableTotp ? { totpSecret: null, totpPendingSecret: null, totpLastStep: null } : {}) },
    });
    const { count } = await tx.session.updateMany({
      where: { userId: user.id, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: "password reset from the command line" },
    });
    await audit(tx, { viewer: anonymous }, {
      workspaceId: null,
      action: "user.resetPassword",
      targetType: "User",
      targetId: user.id,
      data: { via: "cli", sessionsEnded: count, totpDisabled: Boolean(options.disableTotp) },
    });
    return count;
  });
  return { ...user, password, sessionsEnded: ended };
}
