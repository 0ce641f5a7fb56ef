import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceStatus } from "../../src/generated/prisma/client.js";
import { SERVICE_ACTIONS, SERVICE_STATUSES } from "../../src/modules/deployment/deployment.service.js";
import {
  AddServiceDocument,
  AssignedServicesDocument,
  CreateDeploymentDocument,
  DeleteDeploymentDocument,
  DeployDeploymentDocument,
  DeploymentDocument,
  DeploymentsNestedDocument,
  RemoveServiceDocument,
  ReportServiceStatusDocument,
  ServiceDocument,
  StartDeploymentDocument,
  StopDeploymentDocument,
  UpdateDeploymentDocument,
  UpdateServiceDocument,
  VerifyServiceDomainDocument,
  WorkspaceDeploymentsDocument,
  type CreateDeploymentInput,
} from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;
const as = (user: { accessToken: string }) => ({ token: user.accessToken });
const asMachine = (machine: { credential: string }) => ({ token: machine.credential });
const domainName = () => `${unique("app")}.example.invalid`;

interface Team {
  owner: SignedIn;
  workspaceId: string;
  machine: { id: string; credential: string };
}

async function team(): Promise<Team> {
  const { owner, workspace } = await ownedWorkspace(server);
  return { owner, workspaceId: workspace.id, machine: await createMachineDirect(server, workspace.id) };
}

async function create(t: Team, extra: Partial<CreateDeploymentInput> = {}) {
  const input: CreateDeploymentInput = {
    workspaceId: t.workspaceId,
    name: unique("shop"),
    services: [
      { name: "web", image: "ghcr.io/acme/web:1", env: { PORT: "8080" } },
      { name: "api", image: "ghcr.io/acme/api:1", command: "node server.js" },
    ],
    ...extra,
  };
  return ok(await server.execute(CreateDeploymentDocument, { input }, as(t.owner))).createDeployment;
}

describe(`creating deployments (${backend})`, () => {
  it("creates a deployment with its services, all STOPPED, listed by name", async () => {
    const t = await team();
    const host = domainName();
    const d = await create(t, { services: [{ name: "web", image: "nginx", domain: host.toUpperCase() }, { name: "api", command: "node server.js" }] });
    expect(d).toMatchObject({ revision: 0, status: "STOPPED", serviceCount: 2 });
    expect(d.services.map((s) => s.name)).toEqual(["api", "web"]);
    const web = d.services.find((s) => s.name === "web")!;
    expect(web).toMatchObject({ status: "STOPPED", revision: 0, domain: host, domainStatus: "PENDING", machineId: null });
    expect(web.domainChallenge).toEqual({ recordType: "TXT", recordName: `_spindle-challenge.${host}`, value: expect.stringMatching(/^spindle-verify-/) });
    expect(d.services.find((s) => s.name === "api")).toMatchObject({ domain: null, domainStatus: "NONE", domainChallenge: null });
    const audit = await prisma().auditEntry.findMany({ where: { targetId: d.id } });
    expect(audit.map((a) => a.action)).toEqual(["deployment.create"]);
  });

  it("refuses a name the workspace already has, naming input.name", async () => {
    const t = await team();
    const d = await create(t);
    const error = errorOf(await server.execute(CreateDeploymentDocument, { input: { workspaceId: t.workspaceId, name: d.name } }, as(t.owner)));
    expect(error).toMatchObject({ code: "CONFLICT", status: 409 });
    expect(fieldsOf(error)).toEqual(["input.name"]);
    // Another workspace may use it.
    const other = await team();
    expect(ok(await server.execute(CreateDeploymentDocument, { input: { workspaceId: other.workspaceId, name: d.name } }, as(other.owner))).createDeployment.name).toBe(d.name);
  });

  it.each([
    ["two services with one name", [{ name: "a", image: "x" }, { name: "a", image: "y" }], ["input.services.1.name"]],
    ["a service with neither image nor command", [{ name: "a" }], ["input.services.0.image"]],
    ["a bad domain", [{ name: "a", image: "x", domain: "not a domain" }], ["input.services.0.domain"]],
    ["env with a number", [{ name: "a", image: "x", env: { PORT: 1 } }], ["input.services.0.env.PORT"]],
    ["an image with spaces", [{ name: "a", image: "my image" }], ["input.services.0.image"]],
  ])("refuses %s, naming the field", async (_what, services, fields) => {
    const t = await team();
    const error = errorOf(await server.execute(CreateDeploymentDocument, { input: { workspaceId: t.workspaceId, name: "d", services } as CreateDeploymentInput }, as(t.owner)));
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error)).toEqual(fields);
    expect(await prisma().deployment.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
  });

  it("refuses a domain another service of the workspace uses, naming the field, on create, add and update", async () => {
    const t = await team();
    const host = domainName();
    const d = await create(t, { services: [{ name: "web", image: "nginx", domain: host }] });
    const onCreate = errorOf(
      await server.execute(CreateDeploymentDocument, { input: { workspaceId: t.workspaceId, name: "x", services: [{ name: "w", image: "x", domain: host }] } }, as(t.owner)),
    );
    expect(onCreate.code).toBe("CONFLICT");
    expect(fieldsOf(onCreate)).toEqual(["input.services.0.domain"]);
    // Another workspace's claim is its own business (test/graphql/service-domains.test.ts).
    const other = await team();
    ok(await server.execute(CreateDeploymentDocument, { input: { workspaceId: other.workspaceId, name: "x", services: [{ name: "w", image: "x", domain: host }] } }, as(other.owner)));
    const onAdd = errorOf(await server.execute(AddServiceDocument, { input: { deploymentId: d.id, name: "two", image: "x", domain: host } }, as(t.owner)));
    expect(fieldsOf(onAdd)).toEqual(["input.domain"]);
    const api = ok(await server.execute(AddServiceDocument, { input: { deploymentId: d.id, name: "api", image: "x" } }, as(t.owner))).addService;
    const onUpdate = errorOf(await server.execute(UpdateServiceDocument, { input: { id: api.id, domain: host } }, as(t.owner)));
    expect(onUpdate.code).toBe("CONFLICT");
    expect(fieldsOf(onUpdate)).toEqual(["input.domain"]);
    const dupName = errorOf(await server.execute(AddServiceDocument, { input: { deploymentId: d.id, name: "web", image: "x" } }, as(t.owner)));
    expect(dupName.code).toBe("CONFLICT");
    expect(fieldsOf(dupName)).toEqual(["input.name"]);
  });

  it("returns the first result for a retried idempotency key", async () => {
    const t = await team();
    const input = { workspaceId: t.workspaceId, name: unique("d"), idempotencyKey: unique("k") };
    const a = ok(await server.execute(CreateDeploymentDocument, { input }, as(t.owner))).createDeployment;
    const b = ok(await server.execute(CreateDeploymentDocument, { input }, as(t.owner))).createDeployment;
    expect(b.id).toBe(a.id);
  });
});

describe(`deploying, starting and stopping services (${backend})`, () => {
  it("deploys all (revisions + 1), reports, deploys one, stops all, starts one", async () => {
    const t = await team();
    const d = await create(t);
    const api = d.services.find((s) => s.name === "api")!;
    const web = d.services.find((s) => s.name === "web")!;

    const deployed = ok(await server.execute(DeployDeploymentDocument, { input: { id: d.id } }, as(t.owner))).deployDeployment;
    expect(deployed).toMatchObject({ revision: 1, status: "DEPLOYING" });
    expect(deployed.services.map((s) => [s.name, s.status, s.revision, s.machineId])).toEqual([
      ["api", "DEPLOYING", 1, t.machine.id],
      ["web", "DEPLOYING", 1, t.machine.id],
    ]);
    const assigned = ok(await server.execute(AssignedServicesDocument, {}, asMachine(t.machine))).assignedServices;
    expect(assigned.map((s) => s.name).sort()).toEqual(["api", "web"]);

    const report = (serviceId: string, status: "RUNNING" | "FAILED", revision: number) =>
      server.execute(ReportServiceStatusDocument, { input: { serviceId, revision, status, reason: status === "FAILED" ? "exit 1" : null } }, asMachine(t.machine));
    expect(ok(await report(api.id, "RUNNING", 1)).reportServiceStatus.status).toBe("RUNNING");
    expect(ok(await report(web.id, "RUNNING", 1)).reportServiceStatus.status).toBe("RUNNING");
    expect(ok(await server.execute(DeploymentDocument, { id: d.id }, as(t.owner))).deployment.status).toBe("RUNNING");

    const one = ok(await server.execute(DeployDeploymentDocument, { input: { id: d.id, serviceId: web.id } }, as(t.owner))).deployDeployment;
    expect(one.revision).toBe(1);
    expect(one.services.map((s) => [s.name, s.status, s.revision])).toEqual([
      ["api", "RUNNING", 1],
      ["web", "DEPLOYING", 2],
    ]);
    expect(errorOf(await report(web.id, "RUNNING", 1))).toMatchObject({ code: "CONFLICT", extensions: { revision: 2 } });
    expect(ok(await report(web.id, "FAILED", 2)).reportServiceStatus).toMatchObject({ status: "FAILED", statusReason: "exit 1" });
    expect(ok(await server.execute(DeploymentDocument, { id: d.id }, as(t.owner))).deployment.status).toBe("FAILED");

    const stopped = ok(await server.execute(StopDeploymentDocument, { input: { id: d.id } }, as(t.owner))).stopDeployment;
    expect(stopped.services.map((s) => s.status)).toEqual(["STOPPED", "STOPPED"]);
    expect(stopped.status).toBe("STOPPED");
    const again = errorOf(await server.execute(StopDeploymentDocument, { input: { id: d.id } }, as(t.owner)));
    expect(again.code).toBe("CONFLICT");
    expect(again.message).toContain("STOPPED");

    const started = ok(await server.execute(StartDeploymentDocument, { input: { id: d.id, serviceId: api.id } }, as(t.owner))).startDeployment;
    expect(started.services.map((s) => [s.name, s.status])).toEqual([
      ["api", "DEPLOYING"],
      ["web", "STOPPED"],
    ]);
    expect(started.status).toBe("DEPLOYING");
    // Start all: only the stopped one moves.
    const all = ok(await server.execute(StartDeploymentDocument, { input: { id: d.id } }, as(t.owner))).startDeployment;
    expect(all.services.map((s) => s.status)).toEqual(["DEPLOYING", "DEPLOYING"]);
    expect(errorOf(await server.execute(StartDeploymentDocument, { input: { id: d.id } }, as(t.owner))).code).toBe("CONFLICT");

    const audit = await prisma().auditEntry.findMany({ where: { data: { path: ["deploymentId"], equals: d.id } }, orderBy: { at: "asc" } });
    expect(audit.map((a) => a.action)).toEqual([
      "deployment.deploy",
      "deployment.deploy",
      "deployment.stop",
      "deployment.start",
      "deployment.start",
    ]);
  });

  const single = {
    start: (id: string, serviceId: string, t: Team) => server.execute(StartDeploymentDocument, { input: { id, serviceId } }, as(t.owner)),
    stop: (id: string, serviceId: string, t: Team) => server.execute(StopDeploymentDocument, { input: { id, serviceId } }, as(t.owner)),
  };
  const cases = (["start", "stop"] as const).flatMap((action) =>
    SERVICE_STATUSES.filter((s) => !(SERVICE_ACTIONS[action].from as readonly string[]).includes(s)).map((status) => [action, status] as const),
  );

  it.each(cases)("refuses to %s a %s service: CONFLICT naming both", async (action, status) => {
    const t = await team();
    const d = await create(t);
    const service = d.services[0]!;
    await prisma().service.update({ where: { id: service.id }, data: { status: status as ServiceStatus } });
    const error = errorOf(await single[action](d.id, service.id, t));
    expect(error).toMatchObject({ code: "CONFLICT", extensions: { action, status } });
    expect(error.message).toContain(`Cannot ${action} service ${service.id}: it is ${status}`);
    expect((await prisma().service.findUniqueOrThrow({ where: { id: service.id } })).status).toBe(status);
  });

  const reportCases = (["running", "fail"] as const).flatMap((action) =>
    SERVICE_STATUSES.filter((s) => !(SERVICE_ACTIONS[action].from as readonly string[]).includes(s) && s !== SERVICE_ACTIONS[action].to).map(
      (status) => [action, status] as const,
    ),
  );

  it.each(reportCases)("refuses the machine report '%s' for a %s service", async (action, status) => {
    const t = await team();
    const d = await create(t);
    const service = d.services[0]!;
    await prisma().service.update({ where: { id: service.id }, data: { status: status as ServiceStatus, machineId: t.machine.id } });
    const error = errorOf(
      await server.execute(
        ReportServiceStatusDocument,
        { input: { serviceId: service.id, revision: 0, status: action === "running" ? "RUNNING" : "FAILED" } },
        asMachine(t.machine),
      ),
    );
    expect(error).toMatchObject({ code: "CONFLICT", extensions: { action, status } });
  });

  it("only the service's own machine may report on it", async () => {
    const t = await team();
    const d = await create(t);
    ok(await server.execute(DeployDeploymentDocument, { input: { id: d.id } }, as(t.owner)));
    const other = await createMachineDirect(server, t.workspaceId);
    const error = errorOf(await server.execute(ReportServiceStatusDocument, { input: { serviceId: d.services[0]!.id, revision: 1, status: "RUNNING" } }, asMachine(other)));
    expect(error.code).toBe("NOT_FOUND");
    expect(ok(await server.execute(AssignedServicesDocument, {}, asMachine(other))).assignedServices).toEqual([]);
  });

  it("refuses to act on a deployment without services, or on a service of another deployment", async () => {
    const t = await team();
    const empty = ok(await server.execute(CreateDeploymentDocument, { input: { workspaceId: t.workspaceId, name: unique("e") } }, as(t.owner))).createDeployment;
    expect(errorOf(await server.execute(DeployDeploymentDocument, { input: { id: empty.id } }, as(t.owner))).code).toBe("CONFLICT");
    const full = await create(t);
    const wrong = errorOf(await server.execute(StartDeploymentDocument, { input: { id: empty.id, serviceId: full.services[0]!.id } }, as(t.owner)));
    expect(wrong.code).toBe("NOT_FOUND");
  });

  it("a deploy with no machine available waits for one", async () => {
    const t = await team();
    await prisma().machine.update({ where: { id: t.machine.id }, data: { schedulable: false } });
    const d = await create(t);
    const deployed = ok(await server.execute(DeployDeploymentDocument, { input: { id: d.id } }, as(t.owner))).deployDeployment;
    expect(deployed.services.map((s) => [s.machineId, s.statusReason])).toEqual([
      [null, "waiting for a machine"],
      [null, "waiting for a machine"],
    ]);

    // A machine arrives: the waiting services get it.
    const deployments = server.app.services.deployments;
    const arrived = await createMachineDirect(server, t.workspaceId);
    expect(await deployments.placeWaiting(t.workspaceId)).toBe(2);
    expect((await prisma().service.findMany({ where: { deploymentId: d.id } })).map((s) => [s.machineId, s.statusReason])).toEqual([
      [arrived.id, null],
      [arrived.id, null],
    ]);
  });
});

describe(`editing deployments (${backend})`, () => {
  it("renames, adds, updates and removes services, and deletes the deployment", async () => {
    const t = await team();
    const d = await create(t);
    const other = await create(t);
    const renamed = ok(await server.execute(UpdateDeploymentDocument, { input: { id: d.id, name: "storefront" } }, as(t.owner))).updateDeployment;
    expect(renamed.name).toBe("storefront");
    const clash = errorOf(await server.execute(UpdateDeploymentDocument, { input: { id: other.id, name: "storefront" } }, as(t.owner)));
    expect(clash.code).toBe("CONFLICT");
    expect(fieldsOf(clash)).toEqual(["input.name"]);

    const worker = ok(await server.execute(AddServiceDocument, { input: { deploymentId: d.id, name: "worker", command: "python worker.py" } }, as(t.owner))).addService;
    expect(worker).toMatchObject({ status: "STOPPED", command: "python worker.py", image: null });
    const updated = ok(
      await server.execute(UpdateServiceDocument, { input: { id: worker.id, image: "python:3.12", env: { QUEUE: "jobs" }, name: "jobs" } }, as(t.owner)),
    ).updateService;
    expect(updated).toMatchObject({ name: "jobs", image: "python:3.12", command: "python worker.py", env: { QUEUE: "jobs" } });
    const noRun = errorOf(await server.execute(UpdateServiceDocument, { input: { id: worker.id, image: null, command: null } }, as(t.owner)));
    expect(fieldsOf(noRun)).toEqual(["input.image"]);

    const after = ok(await server.execute(RemoveServiceDocument, { id: worker.id }, as(t.owner))).removeService;
    expect(after.services.map((s) => s.name)).toEqual(["api", "web"]);
    expect(errorOf(await server.execute(ServiceDocument, { id: worker.id }, as(t.owner))).code).toBe("NOT_FOUND");

    expect(ok(await server.execute(DeleteDeploymentDocument, { id: d.id }, as(t.owner))).deleteDeployment).toBe(d.id);
    expect(errorOf(await server.execute(DeploymentDocument, { id: d.id }, as(t.owner))).code).toBe("NOT_FOUND");
    expect(await prisma().service.count({ where: { deploymentId: d.id } })).toBe(0);
    const actions = (await prisma().auditEntry.findMany({ where: { workspaceId: t.workspaceId }, orderBy: { at: "asc" } })).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(["deployment.update", "service.add", "service.update", "service.remove", "deployment.delete"]));
  });

  it("verifies a domain against its TXT record: a name with no record (.invalid never resolves) FAILS with the reason", async () => {
    const t = await team();
    const host = domainName();
    const d = await create(t, { services: [{ name: "web", image: "nginx", domain: host }] });
    const web = d.services[0]!;
    const result = ok(await server.execute(VerifyServiceDomainDocument, { id: web.id }, as(t.owner))).verifyServiceDomain;
    expect(result.verified).toBe(false);
    expect(result.reason).toContain(`_spindle-challenge.${host}`);
    expect(result.service).toMatchObject({ domainStatus: "FAILED", domainCheckedAt: expect.any(String) });
    expect(result.service.domainChallenge?.value).toBe(web.domainChallenge?.value);

    // A new domain starts over with a new token; clearing it leaves nothing to verify.
    const moved = ok(await server.execute(UpdateServiceDocument, { input: { id: web.id, domain: domainName() } }, as(t.owner))).updateService;
    expect(moved).toMatchObject({ domainStatus: "PENDING", domainCheckedAt: null });
    expect(moved.domainChallenge?.value).not.toBe(web.domainChallenge?.value);
    const cleared = ok(await server.execute(UpdateServiceDocument, { input: { id: web.id, domain: null } }, as(t.owner))).updateService;
    expect(cleared).toMatchObject({ domain: null, domainStatus: "NONE", domainChallenge: null });
    const nothing = errorOf(await server.execute(VerifyServiceDomainDocument, { id: web.id }, as(t.owner)));
    expect(nothing.code).toBe("CONFLICT");
  });

  it("hides deployments and services from strangers and keeps viewers read-only", async () => {
    const t = await team();
    const d = await create(t);
    const stranger = await signedInUser(server);
    const viewer = await signedInUser(server);
    await addMember(server, t.workspaceId, viewer.id, "VIEWER");
    expect(errorOf(await server.execute(DeploymentDocument, { id: d.id }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(ServiceDocument, { id: d.services[0]!.id }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(DeployDeploymentDocument, { input: { id: d.id } }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(VerifyServiceDomainDocument, { id: d.services[0]!.id }, as(stranger))).code).toBe("NOT_FOUND");
    expect(ok(await server.execute(DeploymentDocument, { id: d.id }, as(viewer))).deployment.id).toBe(d.id);
    expect(ok(await server.execute(ServiceDocument, { id: d.services[0]!.id }, as(viewer))).service.deployment.id).toBe(d.id);
    expect(errorOf(await server.execute(DeployDeploymentDocument, { input: { id: d.id } }, as(viewer))).code).toBe("FORBIDDEN");
  });

  it("lists the workspace's deployments, searchable by name", async () => {
    const t = await team();
    const a = await create(t, { name: "Storefront" });
    await create(t, { name: "backoffice" });
    const list = ok(await server.execute(WorkspaceDeploymentsDocument, { id: t.workspaceId, search: "store" }, as(t.owner))).workspace.deployments;
    expect(list.totalCount).toBe(1);
    expect(list.edges.map((e) => e.node.id)).toEqual([a.id]);
  });

  it("runs the same number of SQL statements for 10 and 100 deployments with their services", async () => {
    const t = await team();
    for (let i = 0; i < 105; i++) {
      await prisma().deployment.create({
        data: {
          workspaceId: t.workspaceId,
          name: `d${i}`,
          createdAt: new Date(Date.now() - i * 1000),
          services: { create: [{ workspaceId: t.workspaceId, name: "web", image: "x" }, { workspaceId: t.workspaceId, name: "api", image: "y" }] },
        },
      });
    }
    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.execute(DeploymentsNestedDocument, { id: t.workspaceId, first }, as(t.owner)));
      const statements = server.db.statements.count - before;
      expect(data.workspace.deployments.edges).toHaveLength(first);
      expect(data.workspace.deployments.edges.every((e) => e.node.services.map((s) => s.name).join() === "api,web")).toBe(true);
      return statements;
    };
    await count(10);
    expect(await count(100)).toBe(await count(10));
  });
});
