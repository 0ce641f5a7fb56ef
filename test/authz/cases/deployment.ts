// Deployments and services: reading needs a role in the workspace, changing needs member or up,
// status reports come only from the service's own machine.
import type { ServiceStatus } from "../../../src/generated/prisma/client.js";
import { unique } from "../../helpers/factories.js";
import { machineOnly, read, write, type MatrixCase, type World } from "../world.js";

async function deployment(world: World, status: ServiceStatus = "STOPPED", domain?: string) {
  const row = await world.server.db.prisma.deployment.create({
    data: {
      workspaceId: world.workspaceId,
      name: unique("d"),
      services: {
        create: [
          {
            workspaceId: world.workspaceId,
            name: "web",
            image: "nginx",
            status,
            revision: 1,
            machineId: world.machine.id,
            ...(domain ? { domain, domainStatus: "PENDING" as const, domainToken: "spindle-verify-test" } : {}),
          },
        ],
      },
    },
    include: { services: true },
  });
  return { id: row.id, serviceId: row.services[0]!.id };
}

const target = (field: string, status: ServiceStatus): MatrixCase => ({
  field: `Mutation.${field}`,
  setup: (world) => deployment(world, status),
  request: (_w, f) => ({ query: `mutation($i: DeploymentTargetInput!) { ${field}(input: $i) { id } }`, variables: { i: { id: f.id } } }),
  expect: write,
});

export const cases: MatrixCase[] = [
  {
    field: "Query.deployment",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "query($id: ID!) { deployment(id: $id) { id services { id } } }", variables: { id: f.id } }),
    expect: read,
  },
  {
    field: "Query.service",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "query($id: ID!) { service(id: $id) { id deployment { id } } }", variables: { id: f.serviceId } }),
    expect: read,
  },
  {
    field: "Query.assignedServices",
    setup: (world) => deployment(world, "DEPLOYING"),
    request: () => ({ query: "{ assignedServices { id workspaceId } }" }),
    expect: machineOnly,
    check: (data, _a, w) => {
      if (data.assignedServices.some((x: { workspaceId: string }) => x.workspaceId !== w.workspaceId)) throw new Error("foreign service assigned");
    },
  },
  {
    field: "Mutation.createDeployment",
    request: (w) => ({
      query: "mutation($i: CreateDeploymentInput!) { createDeployment(input: $i) { id } }",
      variables: { i: { workspaceId: w.workspaceId, name: unique("d"), services: [{ name: "web", image: "nginx" }] } },
    }),
    expect: write,
  },
  {
    field: "Mutation.updateDeployment",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "mutation($i: UpdateDeploymentInput!) { updateDeployment(input: $i) { id } }", variables: { i: { id: f.id, name: unique("n") } } }),
    expect: write,
  },
  {
    field: "Mutation.deleteDeployment",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "mutation($id: ID!) { deleteDeployment(id: $id) }", variables: { id: f.id } }),
    expect: write,
  },
  {
    field: "Mutation.addService",
    setup: (world) => deployment(world),
    request: (_w, f) => ({
      query: "mutation($i: AddServiceInput!) { addService(input: $i) { id } }",
      variables: { i: { deploymentId: f.id, name: "api", image: "nginx" } },
    }),
    expect: write,
  },
  {
    field: "Mutation.updateService",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "mutation($i: UpdateServiceInput!) { updateService(input: $i) { id } }", variables: { i: { id: f.serviceId, image: "nginx:2" } } }),
    expect: write,
  },
  {
    field: "Mutation.removeService",
    setup: (world) => deployment(world),
    request: (_w, f) => ({ query: "mutation($id: ID!) { removeService(id: $id) { id } }", variables: { id: f.serviceId } }),
    expect: write,
  },
  target("deployDeployment", "RUNNING"),
  target("startDeployment", "STOPPED"),
  target("stopDeployment", "RUNNING"),
  {
    field: "Mutation.verifyServiceDomain",
    setup: (world) => deployment(world, "STOPPED", `${unique("d")}.example.invalid`),
    request: (_w, f) => ({ query: "mutation($id: ID!) { verifyServiceDomain(id: $id) { verified } }", variables: { id: f.serviceId } }),
    expect: write,
  },
  {
    field: "Mutation.reportServiceStatus",
    setup: (world) => deployment(world, "DEPLOYING"),
    request: (_w, f) => ({
      query: "mutation($i: ReportServiceStatusInput!) { reportServiceStatus(input: $i) { id status } }",
      variables: { i: { serviceId: f.serviceId, revision: 1, status: "RUNNING" } },
    }),
    expect: machineOnly,
  },
];
