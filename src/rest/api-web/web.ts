// api-web's signed-in user: sign-in, tasks, machines, the worker (machine) API, and the profile.
import type { Route } from "../route.js";

export const apiWebUserRoutes: Route[] = [];
