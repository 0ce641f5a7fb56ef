// The one request type every service takes, `(ctx, input)`: who is asking, their workspace access
// for this request, the request's id (for audit entries and logs) and where it came from. It names
// nothing of GraphQL, so a service never imports the GraphQL Context (which names the services:
// that import made a circle).
import type { Viewer } from "../../auth/viewer.js";
import type { WorkspaceAccess } from "./access.js";

/** Where a request came from: sign-in limits count per address, sessions keep the user agent. */
export interface ClientInfo {
  ip: string;
  userAgent?: string;
}

export interface RequestContext {
  viewer: Viewer;
  /** Workspace authorization for this request (memberships cached per request). */
  access: WorkspaceAccess;
  requestId: string;
  client: ClientInfo;
}
