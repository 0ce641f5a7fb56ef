// The agent's --help texts, apart from its code so that `spindle --help` loads nothing else.
export const AGENT_HELP = {
  agent: `Usage: spindle agent [options]
       spindle agent rotate [--state-dir DIR]
       spindle agent recover [--state-dir DIR] [--server URL --machine-id ID --recovery-secret spr_...]

Runs the machine agent: it runs the workers, tasks, flow runs and services the server assigns to
this machine and ships their logs. The first start enrolls the machine with a one-time token:

  spindle agent --server http://spindle.example:4000 --enroll spe_...

Its credential and recovery secret are kept in the state folder (readable by this user only); later
starts need no options.

Options:
  --server URL             The Spindle server (stored at enrollment)
  --enroll TOKEN           Enroll with this enrollment token (spe_...) when not enrolled yet
  --name NAME              The machine's name at enrollment (default: the hostname)
  --external-id ID         The machine's own id in the workspace (default: the hostname)
  --label LABEL            A label to enroll with (repeatable)
  --capability NAME        A capability besides the detected ones (repeatable)
  --executor NAME=COMMAND  Run stages of tasks that require capability NAME with COMMAND (repeatable;
                           README, "The executor protocol")
  --max-tasks N            Tasks run at once (default 4)
  --grace SECONDS          After SIGTERM, how long running tasks may take to finish (default 30)
  --kill-grace SECONDS     Between TERM and KILL when a process is stopped (default 10)
  --log-buffer LINES       Log lines kept while the server is unreachable (default 100000)
  --state-dir DIR          The state folder (default $SPINDLE_AGENT_STATE_DIR or ~/.spindle-agent)
  --log-level LEVEL        debug, info, warn or error (default info)

Exit codes: 0 stopped, 64 usage, 69 server unreachable at enrollment, 77 credential or token
refused, 78 not enrolled.
`,
  rotate: `Usage: spindle agent rotate [--state-dir DIR]

Replaces this machine's credential with a new one and stores it; the old one stops working at once.
A running agent picks the new one up from the state folder.
`,
  recover: `Usage: spindle agent recover [--state-dir DIR] [--server URL --machine-id ID --recovery-secret spr_...]

Trades the recovery secret for a new credential and a new recovery secret (both old ones stop
working), for a machine whose credential was rotated away or lost. Without options it uses the state
folder's; with them it rebuilds a lost state folder. --recovery-secret - reads the secret from stdin
(it then does not show in the process list).
`,
};
