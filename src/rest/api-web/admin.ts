// api-web's projects and members, and its administration: developers, projects, worker tokens, machines.
import type { Route } from "../route.js";

export const apiWebAdminRoutes: Route[] = [];
