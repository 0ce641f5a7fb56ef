// The api-web dialect (../shared/seeds/002): camelCase JSON, errors as {"error"}, one implicit
// workspace (common.ts).
import type { Route } from "../route.js";
import { apiWebAdminRoutes } from "./admin.js";
import { apiWebUserRoutes } from "./web.js";
import { apiWebWorkerRoutes } from "./workers.js";

export const apiWebRoutes: Route[] = [...apiWebUserRoutes, ...apiWebAdminRoutes, ...apiWebWorkerRoutes];
