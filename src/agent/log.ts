// The agent's own messages (not the output of what it runs, which goes to the server): one line each
// on stderr, with the time and level, so a service manager's journal shows what the agent did.
export type AgentLogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<AgentLogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface AgentLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function createAgentLog(level: AgentLogLevel = "info", write: (line: string) => void = (line) => process.stderr.write(line)): AgentLog {
  const at = (wanted: AgentLogLevel) => (message: string) => {
    if (ORDER[wanted] >= ORDER[level]) write(`${new Date().toISOString()} ${wanted.toUpperCase().padEnd(5)} ${message}\n`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
