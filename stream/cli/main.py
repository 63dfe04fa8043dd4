"""The command's entry points (``entry``: ``mlops-stream``, ``python -m stream``; ``main``, in process): the arguments
read into a run's options, the job started, and whatever ends it turned into an exit code."""

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
    signals = Signals()
    signals.install()  # first of all: a stop from now on is held, then ends the run as documented
    import gc
    import os

    # The command never multiplies matrices: OpenBLAS's idle threads, which spin for a while after numpy is imported,
    # would take a core from the run's workers (about 0.1 s of CPU in a million-row run).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # A young-generation collection every 20,000 new objects, not every 700: a short run's imports (tens of thousands
    # of objects that all live on) no longer pay for the ten or so passes that free nothing (see docs/performance.md).
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    code = _main(sys.argv[1:], (None, None, None), T0, signals)
    # The interpreter's shutdown would put the default handlers back in place of Python ones: a Ctrl-C or SIGTERM
    # of a storm arriving then would kill the finished job, which has nothing left to stop. Ignored, they cannot.
    signals.restore(then_ignore=True)
    # The job is over and its files flushed: frozen, the objects still alive are skipped by the interpreter's last
    # cyclic garbage collection at exit (see docs/performance.md for what it saves).
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
    latency counts from (default: now). The caller's SIGINT and SIGTERM handlers are back when it returns."""
    signals = Signals()
    signals.install()
    try:
        argv = sys.argv[1:] if argv is None else argv
        return _main(argv, (stdin, stdout, stderr), time.perf_counter() if started is None else started, signals)
    finally:
        signals.restore()


def _main(argv: list[str], streams: tuple[IO[Any] | None, ...], started: float, signals: Signals) -> int:
    from stream.runs.options import Environment

    env = Environment(*streams)
    if any("://" in arg for arg in argv):  # a URL's credentials are hidden in every message from here on
        from stream.text import remember

        remember(argv)
    try:
        if argv[:1] == ["generate"]:
            return _generate(argv[1:], env)
        from stream.cli.checks import read
        from stream.runs.job import Job

        return Job(read(argv, env), env, signals, argv, started).run()
    except SystemExit as exc:  # argparse: a usage error (2), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)


def _generate(argv: list[str], env: Environment) -> int:
    """``mlops-stream generate``: stopped by Ctrl-C (exit 130) or SIGTERM (143) as any program is."""
    import signal

    from stream.cli.checks import parser_class
    from stream.generate import main as generate_main

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return generate_main(argv, env.stdout_buffer, env.say, parser_class(env, bounded=False))
    except KeyboardInterrupt:
        env.say(
            "mlops-stream: error: generate was interrupted: an output file keeps what it held before; what went to "
            "stdout or a stream is incomplete\n"
        )
        return 130
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
