// The cast of the authorization matrix: one workspace with a user in each role, a stranger who owns
// another workspace, a read-only API key, a machine of the workspace, and nobody at all.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { generateApiKey, displayPrefix, generateSecret, MACHINE_CREDENTIAL_PREFIX, MACHINE_RECOVERY_PREFIX } from "../../src/auth/api-key-format.js";
import { sha256 } from "../../src/auth/secrets.js";
import { addMember, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import type { TestServer } from "../helpers/server.js";

export const actorNames = ["owner", "admin", "member", "viewer", "stranger", "readKey", "machine", "anonymous"] as const;
export type ActorName = (typeof actorNames)[number];

/** What an actor must get: success, or the error code. */
export type Outcome = "ok" | "NOT_FOUND" | "FORBIDDEN" | "NOT_AUTHENTICATED";
export type Expectation = Record<ActorName, Outcome>;

export interface World {
  server: TestServer;
  workspaceId: string;
  /** The stranger's own workspace. */
  otherWorkspaceId: string;
  users: Record<"owner" | "admin" | "member" | "viewer" | "stranger", SignedIn>;
  machine: { id: string; credential: string };
  /** The bearer token each actor sends (none for anonymous). */
  tokens: Record<ActorName, string | undefined>;
}

export type Fixture = Record<string, any>;

export interface MatrixCase {
  /** The root field under test: "Query.workspace", "Mutation.createWorker", "Subscription.logs" ... */
  field: string;
  /** Fresh objects the operation acts on; runs once per actor, so destructive operations are fair. */
  setup?: (world: World, actor: ActorName) => Promise<Fixture>;
  request: (world: World, fixture: Fixture, actor: ActorName) => { query: string | TypedDocumentNode<any, any>; variables?: Record<string, unknown> };
  expect: Expectation;
  /**
   * The credential to send instead of the actor's own (for operations on one's own account that
   * would spoil the shared world, like logout): a fresh credential of the same kind, from `setup`.
   */
  as?: (world: World, fixture: Fixture, actor: ActorName) => string | undefined;
  /** Extra checks on a successful answer (e.g. that a list holds no foreign rows). */
  check?: (data: any, actor: ActorName, world: World, fixture: Fixture) => void;
  /**
   * For a subscription that sends nothing until something happens: makes it happen (called again
   * until the first item arrives, since a subscription is not acknowledged). A subscription's
   * answer is its first item: data, or the error that ends it.
   */
  trigger?: (world: World, fixture: Fixture, actor: ActorName) => Promise<unknown>;
}

const users = (outcome: Outcome) => ({ owner: outcome, admin: outcome, member: outcome, viewer: outcome });

/** Reading inside the workspace: every role and a read key; a stranger learns nothing. */
export const read: Expectation = { ...users("ok"), readKey: "ok", stranger: "NOT_FOUND", machine: "FORBIDDEN", anonymous: "NOT_AUTHENTICATED" };
/** Changing things in the workspace: members and up. */
export const write: Expectation = { ...read, viewer: "FORBIDDEN", readKey: "FORBIDDEN" };
/** Administering the workspace: admins and the owner. */
export const admin: Expectation = { ...write, member: "FORBIDDEN" };
/** Only the owner. */
export const owner: Expectation = { ...admin, admin: "FORBIDDEN" };
/** The viewer's own things (no workspace): any user; keys read only. */
export const selfRead: Expectation = { ...users("ok"), stranger: "ok", readKey: "ok", machine: "FORBIDDEN", anonymous: "NOT_AUTHENTICATED" };
export const selfWrite: Expectation = { ...selfRead, readKey: "FORBIDDEN" };
/** Only a machine, on its own work. */
export const machineOnly: Expectation = { ...users("FORBIDDEN"), stranger: "FORBIDDEN", readKey: "FORBIDDEN", machine: "ok", anonymous: "NOT_AUTHENTICATED" };
/** Only a signed-in session (an API key cannot, a machine cannot). */
export const sessionOnly: Expectation = { ...selfWrite, readKey: "FORBIDDEN" };
/** Anyone, signed in or not. */
export const everyone: Expectation = { ...users("ok"), stranger: "ok", readKey: "ok", machine: "ok", anonymous: "ok" };

export { addMember };

export const isUserActor = (actor: ActorName): actor is keyof World["users"] =>
  actor === "owner" || actor === "admin" || actor === "member" || actor === "viewer" || actor === "stranger";


/** A fresh machine credential and the columns a machine row keeps of it (and of a recovery key). */
export function machineSecrets() {
  const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
  const columns = {
    credentialPrefix: displayPrefix(credential),
    credentialHash: sha256(credential),
    recoveryHash: sha256(generateSecret(MACHINE_RECOVERY_PREFIX)),
  };
  return { credential, columns };
}

/** A machine row with a working credential (enrollment itself is tested over GraphQL). */
export async function createMachineDirect(server: TestServer, workspaceId: string, extra: { capabilities?: string[] } = {}) {
  const { credential, columns } = machineSecrets();
  const machine = await server.db.prisma.machine.create({
    data: {
      workspaceId,
      name: unique("machine"),
      ...columns,
      capabilities: extra.capabilities ?? [],
      lastHeartbeatAt: new Date(),
    },
  });
  return { id: machine.id, credential };
}

export async function createWorld(server: TestServer): Promise<World> {
  const [ownerU, adminU, memberU, viewerU, strangerU] = await Promise.all(
    Array.from({ length: 5 }, () => signedInUser(server)),
  );
  const prisma = server.db.prisma;
  const workspace = await prisma.workspace.create({ data: { name: unique("ws") } });
  const other = await prisma.workspace.create({ data: { name: unique("other") } });
  await addMember(server, workspace.id, ownerU!.id, "OWNER");
  await addMember(server, workspace.id, adminU!.id, "ADMIN");
  await addMember(server, workspace.id, memberU!.id, "MEMBER");
  await addMember(server, workspace.id, viewerU!.id, "VIEWER");
  await addMember(server, other.id, strangerU!.id, "OWNER");
  const readKey = generateApiKey();
  await prisma.apiKey.create({
    data: { userId: ownerU!.id, name: "read only", prefix: displayPrefix(readKey), keyHash: sha256(readKey), scopes: ["READ"] },
  });
  const machine = await createMachineDirect(server, workspace.id);
  return {
    server,
    workspaceId: workspace.id,
    otherWorkspaceId: other.id,
    users: { owner: ownerU!, admin: adminU!, member: memberU!, viewer: viewerU!, stranger: strangerU! },
    machine,
    tokens: {
      owner: ownerU!.accessToken,
      admin: adminU!.accessToken,
      member: memberU!.accessToken,
      viewer: viewerU!.accessToken,
      stranger: strangerU!.accessToken,
      readKey,
      machine: machine.credential,
      anonymous: undefined,
    },
  };
}
