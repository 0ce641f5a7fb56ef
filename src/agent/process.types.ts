// The contract between the agent and the processes it runs (src/agent/process.ts implements it).
// Everything the agent runs (a worker's code, a container, a task stage, a service) is a Child:
// started in its own process group, its output read line by line, stopped with TERM and then KILL
// after a grace period, and registered with the reaper so that it never outlives the agent, even
// when the agent is killed with SIGKILL.

export type OutputStream = "stdout" | "stderr";

export interface SpawnOptions {
  /** The program, or a shell command line when `shell` is true (run by /bin/sh -c). */
  command: string;
  args?: readonly string[];
  shell?: boolean;
  cwd?: string;
  /** The child's whole environment (the caller merges process.env in when it wants it). */
  env?: Record<string, string>;
  /** Written to the child's stdin, which is then closed; "pipe" keeps stdin open as `Child.stdin`. Default: closed at once. */
  stdin?: string | "pipe";
  /** Also open file descriptor 3 as a pipe from the child: each line written to it reaches `onControl`. */
  control?: boolean;
  /** Every line of stdout and stderr, as it arrives (without the newline; a last line without one is delivered at exit). */
  onLine(stream: OutputStream, line: string): void;
  /** Every line the child writes to fd 3 (only with `control`). */
  onControl?(line: string): void;
}

export interface ExitStatus {
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Usage {
  /** CPU of the whole process group since the previous call (0-100 per core, summed), or null on the first call. */
  cpuPercent: number | null;
  /** Resident memory of the whole process group in bytes. */
  memoryBytes: number;
}

export interface Child {
  readonly pid: number;
  /** Resolves once the process has exited and all of its output was delivered to onLine/onControl. */
  readonly exited: Promise<ExitStatus>;
  /** Open only with `stdin: "pipe"`. */
  readonly stdin: NodeJS.WritableStream | null;
  /**
   * TERM to the process group, then KILL to the group after `graceMs` if it has not exited.
   * Resolves when it has exited. Safe to call twice or after exit.
   */
  stop(graceMs: number): Promise<ExitStatus>;
  /** CPU and memory of the process group now (read from /proc; null when it has exited). */
  usage(): Promise<Usage | null>;
}

export type Spawn = (options: SpawnOptions) => Child;
