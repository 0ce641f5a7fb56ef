// Every legacy route Spindle serves, dialect by dialect. A dialect listed as built serves every
// core row of the inventory (test/rest/inventory.test.ts holds it to that).
import { aispinnerRoutes } from "./aispinner.js";
import { apiV1Routes } from "./api-v1/index.js";
import { apiWebRoutes } from "./api-web/index.js";
import { flowsRoutes } from "./flows.js";
import type { Dialect, Route } from "./route.js";
import { spuntoRoutes } from "./spunto.js";
import { spuntoAccountRoutes } from "./spunto-account.js";
import { agentConnectRoute } from "./spunto-agent-socket.js";

export const BUILT_DIALECTS: readonly Dialect[] = ["aispinner", "flows", "spunto", "api-web", "api-v1"];

export const legacyRoutes: Route[] = [...aispinnerRoutes, ...flowsRoutes, ...spuntoRoutes, ...spuntoAccountRoutes, agentConnectRoute, ...apiWebRoutes, ...apiV1Routes];
