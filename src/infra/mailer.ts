// Outgoing mail. Every message is written to the EmailOutbox table first; with SMTP_URL it is then
// sent, without it the message stays there and goes to the log, so sign-up works offline.
import nodemailer from "nodemailer";
import type { PrismaClient } from "../generated/prisma/client.js";
import type { Logger } from "./logger.js";

export interface Mail {
  to: string;
  subject: string;
  body: string;
}

export interface Mailer {
  send(mail: Mail): Promise<void>;
  close(): void;
}

export function createMailer(options: {
  prisma: PrismaClient;
  smtpUrl?: string;
  from: string;
  log: Logger;
}): Mailer {
  const transport = options.smtpUrl ? nodemailer.createTransport(options.smtpUrl) : undefined;
  return {
    async send(mail) {
      const row = await options.prisma.emailOutbox.create({ data: mail });
      if (!transport) {
        options.log.info(
          { outboxId: row.id, to: mail.to, subject: mail.subject, body: mail.body },
          "mail kept in the outbox (no SMTP_URL configured)",
        );
        return;
      }
      try {
        await transport.sendMail({ from: options.from, to: mail.to, subject: mail.subject, text: mail.body });
        await options.prisma.emailOutbox.update({ where: { id: row.id }, data: { sentAt: new Date() } });
      } catch (error) {
        // The caller's action (say, a sign-up) still stands; the outbox keeps the message and the reason.
        options.log.error({ err: error, outboxId: row.id }, "sending mail failed");
        await options.prisma.emailOutbox.update({
          where: { id: row.id },
          data: { error: (error as Error).message.slice(0, 1000) },
        });
      }
    },
    close() {
      transport?.close();
    },
  };
}
