// Signals to a whole process group (everything the agent runs is started as the leader of its own
// group), shared by the agent (process.ts) and its reaper's watchdog, which imports nothing else.

/** Sends `signal` to every process of the group; a group already gone is not an error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Whether any process of the group exists (zombies included: kill(-pgid, 0) cannot tell them apart). */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    // EPERM: the group exists but we may not signal it.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
