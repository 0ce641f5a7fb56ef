import type { Config } from "../../config.js";
import type { PrismaClient } from "../../generated/prisma/client.js";
import type { Logger } from "../../infra/logger.js";
import type { Mailer } from "../../infra/mailer.js";
import type { PubSubService } from "../../infra/pubsub.js";
import type { Live } from "./live.js";

/** What every domain service is built from (see domain.ts). */
export interface DomainDeps {
  prisma: PrismaClient;
  pubsub: PubSubService;
  config: Config;
  log: Logger;
  /** The server's one announcer of committed changes (live.ts). */
  live: Live;
}

/** For the services that send mail (invitations); tests may build the others without one. */
export interface MailingDeps extends DomainDeps {
  mailer: Mailer;
}
