// The api-v1 dialect (../shared/seeds/003): snake_case JSON under /api/v1, errors as {"detail"}
// (422 for bad input), one implicit workspace (common.ts).
import type { Route } from "../route.js";
import { apiV1AccountRoutes } from "./account.js";
import { apiV1SocketRoute } from "./socket.js";
import { apiV1SystemRoutes } from "./system.js";
import { apiV1TaskRoutes } from "./tasks.js";
import { apiV1WorkerRoutes } from "./workers.js";

export const apiV1Routes: Route[] = [...apiV1AccountRoutes, ...apiV1TaskRoutes, ...apiV1WorkerRoutes, ...apiV1SystemRoutes, apiV1SocketRoute];
