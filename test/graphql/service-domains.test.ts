// Service domains between tenants: a claim is only a claim; uniqueness comes from proof of control
// (the TXT challenge, answered here by a real DNS server on loopback), and no answer reveals that
// another workspace uses a domain.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateDeploymentDocument, ServiceDocument, UpdateServiceDocument, VerifyServiceDomainDocument } from "../generated/graphql.js";
import { startTestDns, type TestDns } from "../helpers/dns.js";
import { ownedWorkspace, unique } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let dns: TestDns;
beforeAll(async () => {
  dns = await startTestDns();
  server = await startTestServer({ SPINDLE_DNS_SERVERS: dns.address });
});
afterAll(async () => {
  await server?.close();
  await dns?.close();
});

const as = (user: { accessToken: string }) => ({ token: user.accessToken });

async function tenantWithDomain(host: string) {
  const { owner, workspaceId } = await ownedWorkspace(server);
  const input = { workspaceId, name: unique("site"), services: [{ name: "web", image: "nginx", domain: host }] };
  const created = ok(await server.execute(CreateDeploymentDocument, { input }, as(owner))).createDeployment;
  const service = created.services[0]!;
  return { owner, workspaceId, service, token: service.domainChallenge!.value };
}

const status = async (t: { owner: { accessToken: string }; service: { id: string } }) =>
  ok(await server.execute(ServiceDocument, { id: t.service.id }, as(t.owner))).service?.domainStatus;

describe(`service domains across workspaces (${backend})`, () => {
  it("an unverified claim in one workspace never blocks another, and the answer reveals nothing", async () => {
    const host = `${unique("shop")}.example.test`;
    const squatter = await tenantWithDomain(host);
    const owner = await tenantWithDomain(host.toUpperCase());
    expect(owner.service).toMatchObject({ domain: host, domainStatus: "PENDING" });
    expect(owner.token).not.toBe(squatter.token);
    // Even a VERIFIED claim elsewhere does not show: a third workspace claims the same as any other.
    dns.setTxt(`_spindle-challenge.${host}`, owner.token);
    expect(ok(await server.execute(VerifyServiceDomainDocument, { id: owner.service.id }, as(owner.owner))).verifyServiceDomain.verified).toBe(true);
    const third = await tenantWithDomain(host);
    expect(third.service).toMatchObject({ domain: host, domainStatus: "PENDING" });
    // The squatter cannot verify what it does not control.
    const squat = ok(await server.execute(VerifyServiceDomainDocument, { id: squatter.service.id }, as(squatter.owner))).verifyServiceDomain;
    expect(squat.verified).toBe(false);
    expect(squat.reason).toContain("does not hold this service's token");
    expect(await status(owner)).toBe("VERIFIED");
  });

  it("proof of control decides: whoever the TXT record names now takes the domain, the previous holder goes back to PENDING", async () => {
    const host = `${unique("moved")}.example.test`;
    const before = await tenantWithDomain(host);
    const after = await tenantWithDomain(host);
    dns.setTxt(`_spindle-challenge.${host}`, before.token);
    ok(await server.execute(VerifyServiceDomainDocument, { id: before.service.id }, as(before.owner)));
    dns.setTxt(`_spindle-challenge.${host}`, after.token);
    ok(await server.execute(VerifyServiceDomainDocument, { id: after.service.id }, as(after.owner)));
    expect(await status(after)).toBe("VERIFIED");
    expect(await status(before)).toBe("PENDING");
    expect(await server.db.prisma.service.count({ where: { domain: host, domainStatus: "VERIFIED" } })).toBe(1);
  });

  it("two workspaces verifying at the same moment with both tokens published: exactly one ends VERIFIED", async () => {
    const host = `${unique("race")}.example.test`;
    const a = await tenantWithDomain(host);
    const b = await tenantWithDomain(host);
    dns.setTxt(`_spindle-challenge.${host}`, a.token, b.token);
    await Promise.all([a, b].map((t) => server.execute(VerifyServiceDomainDocument, { id: t.service.id }, as(t.owner))));
    expect(await server.db.prisma.service.count({ where: { domain: host, domainStatus: "VERIFIED" } })).toBe(1);
  });

  it("within one workspace two services still cannot share a domain", async () => {
    const host = `${unique("twice")}.example.test`;
    const t = await tenantWithDomain(host);
    const other = ok(
      await server.execute(CreateDeploymentDocument, { input: { workspaceId: t.workspaceId, name: unique("x"), services: [{ name: "w", image: "x" }] } }, as(t.owner)),
    ).createDeployment.services[0]!;
    const taken = errorOf(await server.execute(UpdateServiceDocument, { input: { id: other.id, domain: host } }, as(t.owner)));
    expect(taken.code).toBe("CONFLICT");
    expect(fieldsOf(taken)).toEqual(["input.domain"]);
    expect(taken.message).toContain("of this workspace");
  });
});
