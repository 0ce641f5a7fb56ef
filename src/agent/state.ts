// The agent's state folder: who this machine is to the server. `state.json` holds the server URL,
// the machine's id and its two secrets (the credential it signs in with and the recovery secret
// that replaces a lost or rotated-away credential). The folder is readable by the agent's user only
// (0700, the file 0600) and the file is replaced atomically, so a crash mid-write never loses the
// secrets. Code of CODE workers is written under `work/` in the same folder.
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface AgentIdentity {
  server: string;
  machineId: string;
  machineName: string;
  workspaceId: string;
  credential: string;
  recoverySecret: string;
}

export const defaultStateDir = () => process.env.SPINDLE_AGENT_STATE_DIR || join(homedir(), ".spindle-agent");

export class StateFolder {
  constructor(readonly dir: string) {}

  get file() {
    return join(this.dir, "state.json");
  }

  get workDir() {
    return join(this.dir, "work");
  }

  /** Creates the folder (and work/) readable by this user only; tightens a folder that was looser. */
  async prepare(): Promise<void> {
    await mkdir(this.workDir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    await chmod(this.workDir, 0o700);
  }

  /** The stored identity, or null when this machine has not enrolled yet. */
  async read(): Promise<AgentIdentity | null> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<AgentIdentity>;
    for (const field of ["server", "machineId", "credential", "recoverySecret"] as const) {
      if (typeof parsed[field] !== "string" || !parsed[field]) throw new Error(`${this.file} is missing "${field}"; enroll again or restore the file`);
    }
    return parsed as AgentIdentity;
  }

  async write(identity: AgentIdentity): Promise<void> {
    await this.prepare();
    const temporary = `${this.file}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
    await rename(temporary, this.file);
  }
}
