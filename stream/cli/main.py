"""The command line: parses and checks arguments, starts a batch or live run, and turns its outcome into the metrics
document and an exit code (0 ok, 1 failed, 2 usage)."""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402 - the job's clock starts before anything else is imported
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import TYPE_CHECKING, Any, NoReturn, TextIO  # noqa: E402

from stream.errors import JobError, MlopsStreamError  # noqa: E402
from stream.errors import reason as _reason  # noqa: E402

if TYPE_CHECKING:
    from stream.config import Config
    from stream.sinks.serve import Server

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE, as `yes | head` does


def _whole(what: str, least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number (``what``, for the message) from ``least`` to ``most``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < least or (most is not None and value > most):
            bounds = f"from {least} to {most}" if most is not None else f"at least {least}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


_positive_int = _whole("a whole number", 1)
_port = _whole("a port number from 0 to 65535 (0: any free port)", 0, 65535)
_lines = _whole("a whole number of lines", 0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    try:
        value = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in bytes such as 4096, 512K or 32M, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text}")
    return value


def _delimiter(text: str) -> str:
    from stream.config import delimiter

    try:
        return delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    from stream.config import fraction

    try:
        return fraction(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1 such as 0.5, got {text!r}") from None


def _column(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a column, or give its 1-based position")
    return text


def _cluster(text: str) -> int | None:
    from stream.runs.executors import parse_cluster

    try:
        return parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


LIVE = "live mode"
LAYOUT = "input layout (found from the file's first lines unless given)"
SCALE = "scale-out (batch runs over files or URLs; the output is the one-process output)"
ONE_OF = "one of"  # a mutually exclusive member of the scale-out group

# Every option once: (group, flag, argparse settings); build_parser() makes the parser from it.
OPTIONS: list[tuple[str | None, str, dict[str, Any]]] = [
    (None, "--input", {
        "metavar": "PATH", "action": "append",
        "help": "CSV input: a path, a glob or a URL (file://, s3://, gs://, ...); repeat it to read several inputs as "
        "one stream, in order; '-' or omitted (with a pipe on stdin) reads stdin",
    }),
    (None, "--config", {"metavar": "PATH", "help": "YAML config (default: ./config.yaml if present)"}),
    (None, "--output", {"metavar": "PATH", "help": "write the metrics JSON here (atomically)"}),
    (None, "--log-file", {"metavar": "PATH", "help": "write the timestamped log here"}),
    (None, "--signals", {"metavar": "PATH", "help": "write per-row signals here ('-' = stdout)"}),
    (None, "--signals-format", {"choices": ("csv", "jsonl"), "default": "csv", "help": "signals format"}),
    (None, "--window", {"type": _positive_int, "metavar": "N", "help": "rolling window (overrides the config)"}),
    (None, "--on-bad-row", {"choices": ("fail", "skip"), "help": "bad-row policy (overrides the config)"}),
    (None, "--key", {
        "metavar": "COLUMN",
        "help": "group rows by this column: each value (a symbol, say) has its own window (overrides the config)",
    }),
    (LAYOUT, "--column", {
        "type": _column, "metavar": "NAME|N",
        "help": "the close column: a header name, or its 1-based position (overrides the config's column)",
    }),
    (LAYOUT, "--delimiter", {
        "type": _delimiter, "metavar": "CHAR", "help": "the field delimiter: , ; | or tab (default: sniffed)",
    }),
    (LAYOUT, "--no-header", {
        "action": "store_true", "help": "the input has no header row: name the close by position with --column N",
    }),
    (LAYOUT, "--skip-lines", {
        "type": _lines, "metavar": "N", "help": "skip N lines at the start of each input, before its header",
    }),
    (LAYOUT, "--format", {
        "choices": ("csv", "jsonl"),
        "help": "the input format (default: told by each input's first line, '{' for JSON Lines)",
    }),
    (LAYOUT, "--decimal", {
        "choices": (".", ","), "metavar": ".|,", "help": "the decimal mark of the values (default: found out)",
    }),
    (LAYOUT, "--max-skipped", {
        "type": _fraction, "metavar": "FRACTION",
        "help": "fail when more than this fraction of the data rows is skipped (default 0.5)",
    }),
    (LAYOUT, "--reverse", {
        "action": "store_true", "help": "read a newest-first file from its last row to its first (regular files)",
    }),
    (None, "--quiet", {"action": "store_true", "help": "print nothing but errors (and signals on stdout)"}),
    (LIVE, "--follow", {
        "action": "store_true", "help": "keep reading as the input grows, like tail -F; SIGINT/SIGTERM stops",
    }),
    (LIVE, "--idle-timeout", {
        "type": _seconds, "metavar": "SECONDS", "help": "with --follow: stop after this long without new data",
    }),
    (LIVE, "--checkpoint", {
        "metavar": "PATH", "help": "with --follow: keep state here; a restart continues exactly once",
    }),
    (LIVE, "--metrics-port", {
        "type": _port, "metavar": "PORT",
        "help": "serve Prometheus /metrics, /healthz and /readyz on this port while the run lasts (batch runs too); "
        "needs the serve extra",
    }),
    (LIVE, "--metrics-host", {
        "metavar": "HOST", "help": "the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    }),
    (ONE_OF, "--workers", {
        "type": _positive_int, "metavar": "N",
        "help": "worker processes on this machine (default: the available cores for files of 32 MiB or more, else 1)",
    }),
    (ONE_OF, "--cluster", {
        "type": _cluster, "metavar": "local[:N]", "default": False,
        "help": "run on an embedded Dask cluster of N worker processes on 127.0.0.1 (default N: the cores)",
    }),
    (ONE_OF, "--scheduler", {"metavar": "ADDRESS", "help": "run on an existing Dask cluster (tcp://host:8786)"}),
    (SCALE, "--block-size", {
        "type": _size, "metavar": "SIZE",
        "help": "bytes per block of the parallel plan, e.g. 512K (default: about four per worker, 128K to 32M)",
    }),
    (None, "--no-progress", {"action": "store_true", "help": "no live progress display on a terminal's stderr"}),
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from stream import __version__

    p = _bounded_parser()(
        prog="mlops-stream",
        description="Exact rolling-mean signals for OHLCV CSV from a file, a pipe or a growing file.",
        epilog="Run 'mlops-stream generate --help' for the synthetic data generator.",
    )
    groups: dict[str | None, Any] = {
        None: p, LAYOUT: p.add_argument_group(LAYOUT), LIVE: p.add_argument_group(LIVE),
        SCALE: p.add_argument_group(SCALE),
    }  # fmt: skip
    groups[ONE_OF] = groups[SCALE].add_mutually_exclusive_group()
    for group, flag, settings in OPTIONS:
        groups[group].add_argument(flag, **settings)
    p.add_argument("--version", action="version", version=f"mlops-stream {__version__}")
    return p


def _bounded_parser() -> type[argparse.ArgumentParser]:
    """argparse's parser, with its one-line errors cut short and escaped: they quote arguments, which may be huge or
    hold a terminal's escape sequences."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            from stream.text import line

            super().error(line(message, 1000))

    return Parser


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
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    started: float | None = None,
) -> int:
    """Run the command on ``argv`` (default: ``sys.argv[1:]``) and return its exit code; ``stdin``, ``stdout`` and
    ``stderr`` (text streams with a ``.buffer``, as csvkit's utilities take theirs) stand in for the process's for
    the run. ``started``: the ``time.perf_counter()`` the run's latency counts from (default: now)."""
    saved = sys.stdin, sys.stdout, sys.stderr
    for name, given in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if given is not None:
            setattr(sys, name, given)
    try:
        return _run(sys.argv[1:] if argv is None else argv, time.perf_counter() if started is None else started)
    except SystemExit as exc:  # argparse: a usage error (2), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def _run(argv: list[str], started: float) -> int:
    if argv[:1] == ["generate"]:
        return _generate(argv[1:])
    args = build_parser().parse_args(argv)
    if args.input is None:
        if sys.stdin is None or sys.stdin.isatty():
            build_parser().error("no input: pass --input PATH, or pipe CSV into stdin")
        args.input = ["-"]
    if args.input.count("-") > 1:
        build_parser().error("stdin ('-') can be given as --input only once")
    if args.key is not None and not args.key.strip():
        build_parser().error("--key must name a column")
    args.inputs = args.input
    if args.follow:
        if len(args.inputs) > 1:
            build_parser().error("--follow follows one input: pass a single --input")
        from stream.errors import SourceError
        from stream.sources.files import local_path

        try:
            path = local_path(args.inputs[0])
        except SourceError as exc:
            build_parser().error(str(exc))
        if path is None:
            build_parser().error("--follow follows a local file or stdin, not a URL")
        from stream.sources.magic import compressed_file

        kind = compressed_file(path) if path != "-" else None
        if kind is not None:
            build_parser().error(f"--follow reads a plain CSV file as it grows, and {path} is {kind}-compressed")
        args.input = path
    else:
        args.input = args.inputs[0] if len(args.inputs) == 1 else None
    if args.follow and (args.workers or args.cluster is not False or args.scheduler):
        build_parser().error("--workers, --cluster and --scheduler apply to batch runs, not to --follow")
    if not args.follow and (args.idle_timeout is not None or args.checkpoint is not None):
        build_parser().error("--idle-timeout and --checkpoint apply to live runs: add --follow")
    if args.reverse and (args.follow or args.input is None or args.input == "-"):
        build_parser().error(
            "--reverse reads one regular file backwards from its end: not a pipe, several inputs or --follow"
        )
    if args.checkpoint is not None and args.input == "-":
        build_parser().error("--checkpoint needs --input PATH (a file): a pipe cannot be resumed at a position")
    args.metrics_to_stdout = args.output == "-"
    if args.metrics_to_stdout:
        if args.signals == "-":
            build_parser().error("--output - and --signals - cannot both go to stdout: pass a file for one of them")
        args.output = None  # the document is printed on stdout, as it is anyway unless --quiet
    clash = _role_clash(args)
    if clash is not None:
        build_parser().error(clash)
    return Job(args, argv, started).run()


def _generate(argv: list[str]) -> int:
    """``mlops-stream generate``: stopped by Ctrl-C (exit 130) or SIGTERM (143) as any program is (the command
    ignores both outside a run)."""
    import signal

    from stream.generate import main as generate_main

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return generate_main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("mlops-stream: error: generate was interrupted; its output is incomplete\n")
        return 130
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _role_clash(args: argparse.Namespace) -> str | None:
    """Why the run would write over one of its own inputs, its config or another of its outputs; None if it would
    not. Looked at before anything is opened for writing."""
    from stream.errors import SourceError
    from stream.fs import roles
    from stream.sources.files import expand, local_path

    config = args.config if args.config is not None else ("config.yaml" if os.path.exists("config.yaml") else None)
    inputs = [roles.Role.of("the config", config)] if config is not None else []
    names = [args.input] if args.follow else args.inputs
    for name in names:
        if name == "-":
            found = roles.stdin_role()
            inputs.extend([found] if found is not None else [])
            continue
        try:
            path = local_path(name)
            local = [] if path is None else [path] if args.follow else [spec.name for spec in expand([path])]
        except SourceError:  # a glob that matches nothing, a bad file:// URL: the run itself says so
            local = [name]
        inputs.extend(roles.Role.of("the input", path) for path in local)
    flags = [("--output", args.output), ("--signals", args.signals), ("--log-file", args.log_file)]
    flags.append(("--checkpoint", args.checkpoint))
    outputs = [roles.Role.of(flag, path) for flag, path in flags if path is not None and path != "-"]
    if args.signals == "-" or args.metrics_to_stdout or not args.quiet:
        found = roles.stdout_role("stdout (--signals -)" if args.signals == "-" else "stdout")
        outputs.extend([found] if found is not None else [])
    try:
        roles.check(inputs, outputs)
    except roles.RoleClash as exc:
        from stream.text import line

        return line(str(exc))
    return None


class Job:
    """One run of the signal job, from arguments to exit code."""

    def __init__(self, args: argparse.Namespace, argv: list[str], started: float) -> None:
        self.args = args
        self.argv = argv
        self.started = started
        self.version: str | None = None
        self.server: Server | None = None  # the metrics server (--metrics-port), for the run to attach itself to
        self.lost: str | None = None  # a live run's rows it could not read, said in the last log line

    def run(self) -> int:
        # As PID 1 in a container the job would otherwise ignore `docker stop`'s SIGTERM until killed; and a
        # SIGINT or SIGTERM after the first must not interrupt the document the first one leads to.
        import signal

        from stream.sinks import log as logsink

        self.log = logsink.log  # configured in place by _run; errors before that go to stderr alone
        before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        _stop_on_signals()
        try:
            return self._run()
        except (_Terminated, KeyboardInterrupt) as exc:  # the first signal, while a document was being written
            return self._fail(_STOPPED[type(exc)], 143 if isinstance(exc, _Terminated) else 130)
        finally:
            # An in-process caller (tests, an embedding program) gets its own handlers back, and its log closed.
            for signum, handler in before.items():
                signal.signal(signum, handler)
            _stopping_since.clear()
            logsink.setup(None)

    def _run(self) -> int:
        from stream.sinks import log as logsink

        args = self.args
        try:
            self.log = logsink.setup(args.log_file, args.quiet)
        except OSError as exc:
            self.log = logsink.setup(None, args.quiet)
            return self._fail(f"the log file {args.log_file} cannot be opened: {_reason(exc)}")
        if args.output:
            from stream.fs.atomic import check_writable

            try:
                check_writable(args.output)
            except OSError as exc:
                return self._unwritable(f"the metrics file {args.output} cannot be written: {_reason(exc)}")
        return self._outcome()

    def _outcome(self) -> int:
        """Process the input and publish the metrics, or the error document of whatever stopped the run."""
        out_of_memory = False
        try:
            doc = self._process()
        except BrokenPipeError:
            return self._broken_pipe()
        except (_Terminated, KeyboardInterrupt) as exc:
            return self._fail(_STOPPED[type(exc)], 143 if isinstance(exc, _Terminated) else 130)
        except MlopsStreamError as exc:
            return self._fail(str(exc))
        except MemoryError:
            out_of_memory = True  # reported below, once the traceback and the frames it holds are freed
        except Exception as exc:
            return self._fail(_phrase(exc))
        finally:
            if self.server is not None:
                self.server.close()
        if out_of_memory:
            return self._fail(_phrase(MemoryError()))
        _ignore_signals()  # the work is done: nothing may stop the document now
        return self._publish(doc, EXIT_OK)

    def _process(self) -> dict[str, Any]:
        from stream import config, seeding

        args, log = self.args, self.log
        log.info("mlops-stream started: %s", " ".join(["mlops-stream", *self.argv]))
        cfg = config.load(args.config)
        self.version = cfg.version
        cfg = cfg.with_overrides(
            window=args.window, on_bad_row=args.on_bad_row, key=args.key, column=args.column,
            delimiter=args.delimiter, header=False if args.no_header else None, skip_lines=args.skip_lines,
            decimal=args.decimal, max_skipped=args.max_skipped, metrics_port=args.metrics_port,
            metrics_host=args.metrics_host, format=args.format,
        )  # fmt: skip
        log.info(
            "config from %s: seed=%d window=%d version=%s column=%s on_bad_row=%s%s%s",
            cfg.source, cfg.seed, cfg.window, cfg.version, cfg.column, cfg.on_bad_row,
            f" key={cfg.key}" if cfg.key is not None else "", _layout_settings(cfg),
        )  # fmt: skip
        if cfg.metrics_port is not None:
            self._serve(cfg.metrics_host, cfg.metrics_port)
        seeding.seed(cfg.seed)
        from stream.runs.context import RunContext

        ctx = RunContext(args, cfg, log, self.started, self.server)
        if args.follow:
            from stream.runs.live import LiveRun

            out = LiveRun(ctx).run()
            self.lost = out.lost
            return ctx.conclude(out)
        from stream.runs import batch

        try:
            doc = ctx.conclude(batch.run(ctx))
        except BaseException:  # a failed or stopped batch run leaves an earlier signals file as it was
            ctx.abandon_signals()
            raise
        ctx.close_signals()
        return doc

    def _serve(self, host: str, port: int) -> None:
        """Start the metrics server before any work, so a port that cannot be bound fails the run at once."""
        from stream.sinks.serve import ServeError, Server

        try:
            self.server = Server(host, port, "live" if self.args.follow else "batch")
        except ServeError as exc:
            raise JobError(str(exc)) from None
        self.log.info("serving metrics on %s/metrics (health: /healthz, readiness: /readyz)", self.server.url)

    def _publish(self, doc: dict[str, Any], code: int) -> int:
        from stream.sinks import metrics

        args, log = self.args, self.log
        if args.output:
            try:
                metrics.write(args.output, doc)
                log.info("metrics written to %s", args.output)
            except OSError as exc:
                return self._unwritable(f"the metrics file {args.output} cannot be written: {_reason(exc)}")
        shown = doc
        if "by_key" in doc:  # thousands of keys would make one enormous log line; the document has them
            shown = {k: v for k, v in doc.items() if k != "by_key"}
            shown["by_key"] = f"{len(doc['by_key'])} keys (see the metrics document)"
        log.info("metrics: %s", metrics.encode(shown).decode().replace("\n", " "))
        wanted = not args.quiet or getattr(args, "metrics_to_stdout", False)  # --output - asks for it even so
        if wanted and args.signals != "-" and sys.stdout is not None:
            try:
                sys.stdout.buffer.write(metrics.encode(doc))
                sys.stdout.flush()
            except BrokenPipeError:
                _silence_stdout()
            except OSError as exc:  # e.g. redirected to a full disk: the printed copy is lost, so say so
                _silence_stdout()
                failed = self._unwritable(f"the metrics document could not be printed on stdout: {_reason(exc)}")
                code = code or failed
        if self.lost:
            log.warning("finished with exit code %d; %s", code, self.lost)
        else:
            log.info("finished with exit code %d", code)
        return code

    def _fail(self, message: str, code: int = EXIT_FAILED) -> int:
        from stream.sinks import metrics

        self.log.error("%s", message)
        self.log.debug("details", exc_info=True)
        return self._publish(metrics.failure(self.version, message), code)

    def _broken_pipe(self) -> int:
        from stream.sinks import metrics

        _silence_stdout()
        message = "the reader of the signals output closed it before the input was fully processed"
        self.log.info("%s; stopping", message)
        if self.args.output:
            try:
                metrics.write(self.args.output, metrics.failure(self.version, message))
            except OSError:
                pass
        return EXIT_BROKEN_PIPE

    def _unwritable(self, message: str) -> int:
        sys.stderr.write(f"mlops-stream: error: {message}\n")
        return EXIT_FAILED


def _layout_settings(cfg: Config) -> str:
    """The input-layout settings that differ from their defaults, for the config's log line."""
    from stream.config import Config

    default = Config()
    shown = ("delimiter", "header", "skip_lines", "decimal", "max_skipped")
    return "".join(f" {k}={getattr(cfg, k)!r}" for k in shown if getattr(cfg, k) != getattr(default, k))


class _Terminated(BaseException):
    """SIGTERM arrived (a BaseException, as KeyboardInterrupt is: no ``except Exception`` may swallow it)."""


_STOPPED: dict[type[BaseException], str] = {
    _Terminated: "stopped by SIGTERM before the input was fully processed; no metrics were computed",
    KeyboardInterrupt: "interrupted before the input was fully processed; no metrics were computed",
}


def _stop_on_signals() -> None:
    import signal

    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)


def _on_stop_signal(signum: int, frame: object) -> None:
    import signal

    # The first signal stops the run; the ones after it (an impatient Ctrl-C, a supervisor repeating SIGTERM) are
    # ignored, so they cannot cut the error document short.
    _ignore_signals()
    raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated


FORCE_AFTER = 3.0  # seconds after the run began to stop: a Ctrl-C from then on ends it at once
_stopping_since: list[float] = []


def _ignore_signals() -> None:
    """From now on SIGTERM is ignored, and so is SIGINT, unless it comes ``FORCE_AFTER`` seconds after this call: a
    person pressing Ctrl-C again on a run stuck while finishing (an output FIFO nobody reads) gets their terminal
    back."""
    import signal

    if not _stopping_since:
        _stopping_since.append(time.monotonic())
    signal.signal(signal.SIGINT, _on_late_signal)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _on_late_signal(signum: int, frame: object) -> None:
    if time.monotonic() - _stopping_since[0] >= FORCE_AFTER:
        message = "interrupted again while finishing; stopped at once, the last document may be missing"
        try:
            os.write(2, f"mlops-stream: error: {message}\n".encode())
        finally:
            os._exit(130)


def _silence_stdout() -> None:
    # Python flushes stdout at exit; once the reader is gone that flush would fail again, noisily.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _phrase(exc: BaseException) -> str:
    """A person-facing sentence for a failure that did not come phrased (the known ones are MlopsStreamError)."""
    if isinstance(exc, MemoryError):
        return "ran out of memory; give the run more memory, or check the input (a --key with millions of values?)"
    if isinstance(exc, RecursionError):
        return "the input or config is nested too deeply to process (RecursionError)"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"an I/O error stopped the run{where}: {_reason(exc)}"
    return f"an internal error stopped the run ({type(exc).__name__}); the log file has the details"
