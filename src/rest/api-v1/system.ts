import type { Route } from "../route.js";

export const apiV1SystemRoutes: Route[] = [];
