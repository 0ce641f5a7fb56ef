// Machines (Spunto "node", api-web "machine", api-v1 "worker"): the module's entry. Its parts, each
// in its own file: enrollment and credentials (enrollment.ts), presence (presence.ts, the
// heartbeat), the admins' lifecycle (lifecycle.ts: approval, draining, decommissioning) and the
// fleet read model (fleet.ts), over what they share (machine-common.ts). The machine module writes
// only machine rows: a machine's tasks, workers and services are released by their own modules,
// through the capabilities the composition root hands it (domain.ts).
import type { DomainDeps } from "../shared/deps.js";
import { createEnrollment } from "./enrollment.js";
import { createFleet } from "./fleet.js";
import { createLifecycle, type DecommissionCapabilities } from "./lifecycle.js";
import { createMachineKit, type MachineHooks } from "./machine-common.js";
import { createPresence, type PresenceCapabilities } from "./presence.js";

export { enrollmentTokenStatuses, tokenStatusOf } from "./enrollment.js";
export { machineStatuses, machineStatusSelect, type MachineStatus, type MachineStatusRow } from "./machine-common.js";

export type MachineCollaborators = MachineHooks & PresenceCapabilities & DecommissionCapabilities;

export function createMachineService(deps: DomainDeps, collaborators: MachineCollaborators) {
  const kit = createMachineKit(deps, collaborators);
  return {
    statusOf: kit.statusOf,
    isOnline: kit.isOnline,
    ...createPresence(deps, kit, collaborators),
    ...createEnrollment(deps, kit),
    ...createLifecycle(deps, kit, collaborators),
    ...createFleet(deps, kit),
  };
}

export type MachineService = ReturnType<typeof createMachineService>;
