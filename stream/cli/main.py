"""The command's entry points: ``mlops-stream`` and ``python -m stream`` (``entry``), and ``main``, which reads the
arguments into a run's options, starts the job and turns whatever ends it into an exit code (0 ok, 1 failed, 2 usage,
130/143 stopped, 141 its output's reader went away)."""

from __future__ import annotations

import time

T0 = time.perf_counter()

import sys  # noqa: E402 - the job's clock starts before anything else is imported

from stream.runs.stops import Signals  # noqa: E402 - small: it is in place before anything slow

TYPE_CHECKING = False  # typing is not imported before the signal handlers are in place
if TYPE_CHECKING:
    from typing import IO, Any

    from stream.runs.options import Environment


def entry() -> int:
    """The command (`mlops-stream`, `python -m stream`): ``main`` with the interpreter's exit made quick."""
    import signal

    # The run puts back what it found when it ends, and the interpreter's shutdown would put the default handlers
    # back in place of Python ones: a Ctrl-C or SIGTERM of a storm arriving then would kill the finished job, which
    # has nothing left to stop. Ignored outside the run, they cannot.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = main(started=T0)
    # The job is over and its files flushed: frozen, the objects still alive are skipped by the interpreter's last
    # cyclic garbage collection at exit (see docs/performance.md for what it saves).
    import gc

    gc.freeze()
    return code


def main(
    argv: list[str] | None = None,
    stdin: IO[Any] | None = None,
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
    *,
    started: float | None = None,
) -> int:
    """Run the command on ``argv`` (default: ``sys.argv[1:]``) and return its exit code; ``stdin``, ``stdout`` and
    ``stderr`` (text streams, with a ``.buffer`` or without, or binary ones) stand in for the process's for the run,
    which is handed them; the process's are left as they are. ``started``: the ``time.perf_counter()`` the run's
    latency counts from (default: now)."""
    started = time.perf_counter() if started is None else started
    argv = sys.argv[1:] if argv is None else argv
    signals = None
    if argv[:1] != ["generate"]:
        # Before anything slow (imports, the config, globs): a stop from now on is held, then ends the run as
        # documented instead of cutting an import or a check in two.
        signals = Signals()
        signals.install()
    try:
        from stream.runs.options import Environment

        env = Environment(stdin, stdout, stderr)
        if signals is None:
            return _generate(argv[1:], env)
        from stream.cli.checks import read
        from stream.runs.job import Job

        return Job(read(argv, env), env, signals, argv, started).run()
    except SystemExit as exc:  # argparse: a usage error (2), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        if signals is not None:
            signals.restore()


def _generate(argv: list[str], env: Environment) -> int:
    """``mlops-stream generate``: stopped by Ctrl-C (exit 130) or SIGTERM (143) as any program is (the command
    ignores both outside a run)."""
    import signal

    from stream.cli.checks import parser_class
    from stream.generate import main as generate_main

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return generate_main(argv, env.stdout_buffer, env.say, parser_class(env, bounded=False))
    except KeyboardInterrupt:
        env.say("mlops-stream: error: generate was interrupted; its output is incomplete\n")
        return 130
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
