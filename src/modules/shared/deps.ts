import type { Config } from "../../config.js";
import type { PrismaClient } from "../../generated/prisma/client.js";
import type { Logger } from "../../infra/logger.js";
import type { Mailer } from "../../infra/mailer.js";
import type { PubSubService } from "../../infra/pubsub.js";
import type { UnitOfWork } from "./unit-of-work.js";

/** What every domain service is built from (see domain.ts). */
export interface DomainDeps {
  prisma: PrismaClient;
  pubsub: PubSubService;
  config: Config;
  log: Logger;
  /** The one way to write: a transaction whose notices are announced after commit (unit-of-work.ts). */
  work: UnitOfWork;
}

/** For the services that send mail (invitations); tests may build the others without one. */
export interface MailingDeps extends DomainDeps {
  mailer: Mailer;
}
