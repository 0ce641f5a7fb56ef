// How a container is run through the machine's runtime (docker or podman: same command line). The
// environment is passed by name (`-e NAME`, values from the runtime's own environment) so that
// secrets never appear in a process list.
import { execFile } from "node:child_process";

export type ContainerRuntime = "docker" | "podman";

export function runtimeCommand(
  runtime: ContainerRuntime,
  spec: { name: string; image: string; command?: string | null; env: readonly string[] },
): { command: string; args: string[] } {
  const args = ["run", "--rm", "--name", spec.name, "--init"];
  for (const name of spec.env) args.push("-e", name);
  args.push(spec.image);
  if (spec.command) args.push("sh", "-c", spec.command);
  return { command: runtime, args };
}

/**
 * Removes the container by name, if it exists. Stopping the runtime's client process does not
 * always stop the container (KILL cannot be forwarded), and a container left behind (a killed agent)
 * would make the next start fail with "name already in use": called after each stop and before each start.
 */
export function removeContainer(runtime: ContainerRuntime, name: string): Promise<void> {
  return new Promise((resolve) => {
    execFile(runtime, ["rm", "-f", name], { timeout: 15_000 }, () => resolve());
  });
}
