// How a container is run through the machine's runtime (docker or podman: same command line). The
// environment is passed by name (`-e NAME`, values from the runtime's own environment) so that
// secrets never appear in a process list.
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
