// The one request type every service takes: who is asking, their workspace access for this
// request, and the request's id (for audit entries and logs). It names nothing of GraphQL, so a
// service never imports the GraphQL Context (which names the services: that import made a circle).
import type { Viewer } from "../../auth/viewer.js";
import type { WorkspaceAccess } from "./access.js";

export interface RequestContext {
  viewer: Viewer;
  /** Workspace authorization for this request (memberships cached per request). */
  access: WorkspaceAccess;
  requestId: string;
}
