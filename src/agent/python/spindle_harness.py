"""Spindle's harness for a CODE worker (an AiSpinner block): runs the block's Python code in this process.

The agent (src/agent/code-worker.ts) starts `python3 -u spindle_harness.py` with
  SPINDLE_CODE_FILE  the path of the block's code,
  SPINDLE_WORKER     JSON: {"id", "name", "revision", "tick_interval_seconds", "settings", "connected_blocks"},
and the worker's own variables in the environment. The code defines `tick(ctx)` and optionally
`setup(ctx)` and `teardown(ctx)`. setup runs once (retried every interval while it raises), then tick
runs every interval, start to start: a tick that overruns is followed at once, never by a burst.

To the agent, one JSON object per line on file descriptor 3:
  {"type": "ready"}                                          setup succeeded
  {"type": "tick", "ok": true, "ms": 12}                     a tick returned
  {"type": "error", "phase": "setup" | "tick", "message": "ValueError: boom", "traceback": "..."}
  {"type": "log", "level": "DEBUG" | "INFO" | "WARN" | "ERROR", "message": "..."}
stdout and stderr stay the code's own (the agent ships them as logs); tracebacks are printed to stderr too.
From the agent, one JSON object per line on stdin:
  {"type": "settings", "tick_interval_seconds": 5, "settings": {...}, "connected_blocks": {...}}
  {"type": "stop"}   as are the end of stdin and SIGTERM: interrupt the tick, run teardown, exit 0.
Exit code 2: the code cannot run as given (it does not compile, raises on import, or has no tick).

Python 3.8+, standard library only.
"""

import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
import types

CHANNEL_FD = 3
EXIT_UNRUNNABLE = 2
LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARN", "WARNING": "WARN", "ERROR": "ERROR"}
HARNESS_VARIABLES = ("SPINDLE_CODE_FILE", "SPINDLE_WORKER")


class StopRequested(BaseException):
    """Raised in the main thread to end the worker. A BaseException, so `except Exception` in the code lets it through."""


class Unrunnable(Exception):
    """The code cannot run as given: reported once, then the harness exits with EXIT_UNRUNNABLE."""

    def __init__(self, message, trace=""):
        super().__init__(message)
        self.message = message
        self.trace = trace


class Channel:
    """The lines to the agent on file descriptor 3. Any thread may send (the code may log from its own threads)."""

    def __init__(self):
        # Not inherited: a process the code starts must not hold the agent's pipe open after we exit.
        os.set_inheritable(CHANNEL_FD, False)
        self._stream = os.fdopen(CHANNEL_FD, "w", buffering=1, encoding="utf-8")
        # Re-entrant: should a stop land between taking the lock and entering the `with` (CPython leaves that
        # window open), teardown's logs, on the same main thread, are not locked out.
        self._lock = threading.RLock()

    def send(self, message):
        line = json.dumps(message, separators=(",", ":")) + "\n"  # json escapes newlines: a message is always one line
        with self._lock:
            self._stream.write(line)

    def log(self, level, message):
        self.send({"type": "log", "level": level, "message": message})

    def error(self, phase, message, trace):
        self.send({"type": "error", "phase": phase, "message": message, "traceback": trace})


class Stopper:
    """Turns SIGTERM, SIGINT, a stop command and the end of stdin into one StopRequested in the main thread.

    A signal is the one way to interrupt the main thread wherever it is (in the code's tick, in a sleep,
    waiting for the next tick), so the other thread's reasons to stop are sent as SIGTERM too.
    """

    def __init__(self):
        self._armed = True
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        if self._armed:
            self._armed = False
            raise StopRequested()

    def disarm(self):
        """Teardown and exit are not to be interrupted."""
        self._armed = False

    @staticmethod
    def request():
        os.kill(os.getpid(), signal.SIGTERM)


class Context:
    """The `ctx` the code's functions receive."""

    def __init__(self, channel, worker, env):
        self._channel = channel
        self.state = {}
        self.settings = dict(worker.get("settings") or {})
        self.connected_blocks = dict(worker.get("connected_blocks") or {})
        self.env = env
        self.worker = types.SimpleNamespace(id=worker.get("id"), name=worker.get("name"), revision=worker.get("revision"))
        self.tick_count = 0

    def log(self, message, level="INFO"):
        name = LEVELS.get(str(level).upper())
        if name is None:
            raise ValueError("ctx.log level must be DEBUG, INFO, WARN or ERROR, not {!r}".format(level))
        self._channel.log(name, str(message))

    def debug(self, message):
        self.log(message, "DEBUG")

    def info(self, message):
        self.log(message, "INFO")

    def warn(self, message):
        self.log(message, "WARN")

    warning = warn

    def error(self, message):
        self.log(message, "ERROR")


def describe(error):
    text = str(error)
    return "{}: {}".format(type(error).__name__, text) if text else type(error).__name__


def user_traceback(error):
    """The traceback from the code's first frame on: the harness's own frames above it are noise to the user."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def print_to_stderr(text):
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def load_block(path):
    """The code as a fresh module named spindle_block (so its `if __name__ == "__main__":` part does not run)."""
    try:
        with open(path, encoding="utf-8") as file:
            source = file.read()
        module = types.ModuleType("spindle_block")
        module.__file__ = path
        # Registered: dataclasses, pickle and typing look a class's module up by name.
        sys.modules[module.__name__] = module
        exec(compile(source, path, "exec"), module.__dict__)
    except Exception as error:
        raise Unrunnable(describe(error), user_traceback(error))
    if not callable(getattr(module, "tick", None)):
        raise Unrunnable("the code defines no tick(ctx) function: a CODE worker needs one, it is called every tick interval")
    return module


def replace_contents(target, source):
    """In place, so that a reference the code kept sees the new values."""
    target.clear()
    target.update(source or {})


class Runner:
    """setup until it succeeds, then tick every interval; settings commands are applied between ticks."""

    def __init__(self, block, ctx, channel, commands, interval):
        self._block = block
        self._ctx = ctx
        self._channel = channel
        self._commands = commands
        self._interval = float(interval)
        self.ready = False

    def run(self):
        while True:
            started = time.monotonic()
            if not self.ready:
                self.ready = self._setup()
            if self.ready:
                self._tick()
            self._wait_for_next(started)

    def teardown(self):
        teardown = getattr(self._block, "teardown", None)
        if not (self.ready and callable(teardown)):
            return
        try:
            teardown(self._ctx)
        except Exception as error:
            trace = user_traceback(error)
            print_to_stderr(trace)
            self._channel.log("ERROR", "teardown(ctx) raised {}\n{}".format(describe(error), trace))

    def _setup(self):
        setup = getattr(self._block, "setup", None)
        if callable(setup):
            try:
                setup(self._ctx)
            except Exception as error:
                self._report("setup", error)
                return False
        self._channel.send({"type": "ready"})
        return True

    def _tick(self):
        self._ctx.tick_count += 1
        started = time.monotonic()
        try:
            self._block.tick(self._ctx)
        except Exception as error:
            self._report("tick", error)
            return
        self._channel.send({"type": "tick", "ok": True, "ms": round((time.monotonic() - started) * 1000)})

    def _report(self, phase, error):
        trace = user_traceback(error)
        print_to_stderr(trace)
        self._channel.error(phase, describe(error), trace)

    def _wait_for_next(self, started):
        """Until `started` + the interval, applying commands as they come (a new interval counts at once)."""
        while True:
            remaining = started + self._interval - time.monotonic()
            try:
                # A timeout of 0 still takes a command already queued: settings sent during an overrunning tick apply before the next.
                command = self._commands.get(timeout=max(remaining, 0))
            except queue.Empty:
                return
            self._apply(command)

    def _apply(self, command):
        if "tick_interval_seconds" in command:
            self._interval = float(command["tick_interval_seconds"])
        if "settings" in command:
            replace_contents(self._ctx.settings, command["settings"])
        if "connected_blocks" in command:
            replace_contents(self._ctx.connected_blocks, command["connected_blocks"])


def take_stdin():
    """The agent's commands, on a private copy of stdin; the code (and what it starts) reads /dev/null instead,
    so that nothing it runs can swallow a command."""
    commands_fd = os.dup(0)  # not inheritable
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return commands_fd


def read_lines(fd):
    """Lines of raw bytes from fd. Not a buffered file object: at exit, the interpreter may finalize one while
    this daemon thread still holds its lock, which aborts the process."""
    pending = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line
    if pending:
        yield pending


def read_commands(fd, commands, channel):
    """The stdin thread: settings go to the main thread's queue; a stop command or the end of stdin stops."""
    for raw in read_lines(fd):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            command = json.loads(line)
        except ValueError:
            command = None
        kind = command.get("type") if isinstance(command, dict) else None
        if kind == "stop":
            break
        if kind == "settings":
            commands.put(command)
        else:
            channel.log("WARN", "spindle harness: ignored a command it does not understand: {}".format(line[:200]))
    Stopper.request()


def read_configuration():
    try:
        worker = json.loads(os.environ["SPINDLE_WORKER"])
        code_file = os.environ["SPINDLE_CODE_FILE"]
    except KeyError as missing:
        raise Unrunnable("spindle harness: the environment variable {} is not set".format(missing))
    except ValueError as error:
        raise Unrunnable("spindle harness: SPINDLE_WORKER is not JSON: {}".format(error))
    if not isinstance(worker, dict):
        raise Unrunnable("spindle harness: SPINDLE_WORKER must be a JSON object")
    return worker, code_file


def prepare(channel):
    """The runner for the configured code, with the agent's commands being read."""
    worker, code_file = read_configuration()
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(take_stdin(), commands, channel), name="spindle-commands", daemon=True).start()
    env = {name: value for name, value in os.environ.items() if name not in HARNESS_VARIABLES}
    block = load_block(code_file)
    # The server keeps the interval within 1 to 86400 s; 1 only guards against a busy loop.
    return Runner(block, Context(channel, worker, env), channel, commands, worker.get("tick_interval_seconds") or 1)


def main():
    try:
        channel = Channel()
    except OSError:
        print_to_stderr("spindle harness: file descriptor 3 (the channel to the agent) is not open; "
                        "the agent opens it (by hand: python3 spindle_harness.py 3>&1)")
        return EXIT_UNRUNNABLE
    stopper = Stopper()
    runner = None
    try:
        runner = prepare(channel)
        runner.run()
    except Unrunnable as unrunnable:
        stopper.disarm()
        print_to_stderr(unrunnable.trace or unrunnable.message)
        channel.error("setup", unrunnable.message, unrunnable.trace)
        return EXIT_UNRUNNABLE
    except StopRequested:
        stopper.disarm()
        if runner is not None:
            runner.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
