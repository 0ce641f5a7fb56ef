import { forbidden, notAuthenticated } from "../schema/errors.js";
import type { SystemRole } from "../generated/prisma/client.js";

/** What a credential may do. A user session has read and write, and admin when the user is an admin. */
export type Scope = "read" | "write" | "admin";

interface Principal {
  userId: string;
  role: SystemRole;
  scopes: ReadonlySet<Scope>;
}

export type UserViewer =
  | (Principal & {
      kind: "session";
      sessionId: string;
      via: "bearer" | "cookie";
      /** When the bearer access token expires (live streams end then); absent for cookies. */
      expiresAt?: Date;
    })
  | (Principal & { kind: "apiKey"; apiKeyId: string; workspaceId: string | null });

/** A machine's own credential: it may only heartbeat, claim work and report on its own work. */
export interface MachineViewer {
  kind: "machine";
  machineId: string;
  workspaceId: string;
  approved: boolean;
  scopes: ReadonlySet<Scope>;
  /** Which credential it signed in with (its hash): a live stream ends once it is rotated away. */
  credentialHash: string;
}

export type Viewer = { kind: "anonymous" } | UserViewer | MachineViewer;

/** The viewer a machine row stands for: its credential grants no user scopes. */
export const machineViewer = (machine: { id: string; workspaceId: string; approval: string; credentialHash: string }): MachineViewer => ({
  kind: "machine",
  machineId: machine.id,
  workspaceId: machine.workspaceId,
  approved: machine.approval === "APPROVED",
  scopes: new Set(),
  credentialHash: machine.credentialHash,
});

export const isUser = (viewer: Viewer): viewer is UserViewer => viewer.kind === "session" || viewer.kind === "apiKey";

export const anonymous: Viewer = { kind: "anonymous" };

/** Effective scopes: what the credential grants AND what the user's role allows. */
export function effectiveScopes(role: SystemRole, granted: Iterable<Scope>): Set<Scope> {
  const scopes = new Set<Scope>();
  for (const scope of granted) {
    // A broader scope includes the narrower ones.
    if (scope === "admin") scopes.add("admin").add("write").add("read");
    if (scope === "write") scopes.add("write").add("read");
    if (scope === "read") scopes.add("read");
  }
  // Workspace roles (next issue) will decide workspace admin rights; system admin needs the role.
  if (role !== "ADMIN") scopes.delete("admin");
  return scopes;
}

export const sessionScopes = (role: SystemRole) =>
  effectiveScopes(role, role === "ADMIN" ? ["admin"] : ["write"]);

export const MACHINE_ONLY_MESSAGE =
  "A machine credential can only heartbeat, claim work and report on its own work; use a user's token or API key";

/** The signed-in user (session or API key); a machine credential is refused. */
export function requireUser(viewer: Viewer): UserViewer {
  if (viewer.kind === "anonymous") throw notAuthenticated();
  if (viewer.kind === "machine") throw forbidden(MACHINE_ONLY_MESSAGE);
  return viewer;
}

/** The calling machine; anything else is refused. */
export function requireMachine(viewer: Viewer): MachineViewer {
  if (viewer.kind === "anonymous") throw notAuthenticated();
  if (viewer.kind !== "machine") throw forbidden("Only a machine, with its own credential, can do this", "machine");
  return viewer;
}
