// The Spunto dialect (../shared/seeds/001): organizations (workspaces) with projects, container
// workers, nodes (machines), deployments of services, API keys and the user's settings.
import type { Route } from "./route.js";

export const spuntoRoutes: Route[] = [];
