// What every resolver receives: who is asking, the services that apply the rules, and the
// request's own plumbing (id, logger, response cookies).
import type { PubSub } from "graphql-yoga";
import type { PrismaClient } from "./generated/prisma/client.js";
import type { Logger } from "./infra/logger.js";
import type { RowReader } from "./infra/rows.js";
import type { Topics } from "./infra/pubsub.js";
import type { Services } from "./modules/domain.js";
import type { RequestLoaders } from "./modules/loaders.js";
import type { ClientInfo, RequestContext } from "./modules/shared/request.js";

export type { Services };

/** A service's `RequestContext`, and what resolvers need besides. */
export interface Context extends RequestContext {
  /** Batch loaders for this request only (modules/loaders.ts). */
  loaders: RequestLoaders;
  prisma: PrismaClient;
  /** Rows by id without Prisma's engine, for point reads of scalars (infra/rows.ts). */
  rows: RowReader;
  services: Services;
  pubsub: PubSub<Topics>;
  log: Logger;
  client: ClientInfo & { secure: boolean };
  /** Adds a Set-Cookie header to the HTTP response (no-op over WebSocket and on a request another site could have forged). */
  setCookie(header: string): void;
}
