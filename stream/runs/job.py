"""One job, from its options to its exit code: the log, the config, the metrics server, the batch or live run, and the
metrics document it ends with (or the error document of whatever stopped it)."""

from __future__ import annotations

import os

from stream.errors import JobError, MlopsStreamError
from stream.errors import reason as _reason
from stream.runs.stops import Terminated, stopped
from stream.sinks import log as logsink

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

    from stream.config import Config
    from stream.runs.options import Environment, Options
    from stream.runs.stops import Signals
    from stream.sinks.serve import Server

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE, as `yes | head` does


class Job:
    """One run of the signal job, from options to exit code."""

    def __init__(self, options: Options, env: Environment, signals: Signals, argv: list[str], started: float) -> None:
        """``signals``: the command's, installed (held); ``argv``: the command line, for the log; ``started``: the
        ``time.perf_counter()`` the run's latency counts from."""
        self.options = options
        self.env = env
        self.signals = signals
        self.argv = argv
        self.started = started
        self.log = logsink.setup(None, stderr=env.stderr)  # configured by _run; errors before that go to stderr alone
        self.version: str | None = None
        self.server: Server | None = None  # the metrics server (--metrics-port), for the run to attach itself to
        self.lost: str | None = None  # a live run's rows it could not read, said in the last log line

    def run(self) -> int:
        try:
            return self._run()
        except (Terminated, KeyboardInterrupt) as exc:  # a stop before the work (one held since the arguments, say)
            self.signals.taken()
            return self._fail(*stopped(exc))
        finally:
            logsink.setup(None)  # an in-process caller gets its log closed

    def _run(self) -> int:
        opts, env = self.options, self.env
        try:
            self.log = logsink.setup(opts.log_file, opts.quiet, stderr=env.stderr)
        except OSError as exc:
            self.log = logsink.setup(None, opts.quiet, stderr=env.stderr)
            return self._fail(f"the log file {opts.log_file} cannot be opened: {_reason(exc)}")
        if not opts.follow:
            # From here the first SIGINT or SIGTERM stops a batch run where it is, one held so far at once (a live
            # run stops itself, cleanly). As PID 1 in a container the job would otherwise ignore `docker stop`.
            self.signals.arm()
        if opts.output:
            from stream.fs.atomic import check_writable

            try:
                check_writable(opts.output)
            except OSError as exc:
                return self._unwritable(f"the metrics file {opts.output} cannot be written: {_reason(exc)}")
        return self._outcome()

    def _outcome(self) -> int:
        """Process the input and publish the metrics, or the error document of whatever stopped the run."""
        out_of_memory = False
        try:
            doc = self._process()
        except BrokenPipeError:
            return self._broken_pipe()
        except (Terminated, KeyboardInterrupt) as exc:
            self.signals.taken()
            return self._fail(*stopped(exc))
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
        return self._publish(doc, EXIT_OK)

    def _process(self) -> dict[str, Any]:
        from stream import config, seeding

        opts, log = self.options, self.log
        log.info("mlops-stream started: %s", " ".join(["mlops-stream", *self.argv]))
        cfg = config.load(opts.config)
        self.version = cfg.version
        cfg = cfg.with_overrides(**opts.overrides._asdict())
        log.info(
            "config from %s: seed=%d window=%d version=%s column=%s on_bad_row=%s%s%s",
            cfg.source, cfg.seed, cfg.window, cfg.version, cfg.column, cfg.on_bad_row,
            f" key={cfg.key}" if cfg.key is not None else "", _layout_settings(cfg),
        )  # fmt: skip
        if cfg.metrics_port is not None:
            self._serve(cfg.metrics_host, cfg.metrics_port)
        seeding.seed(cfg.seed)
        from stream.runs.context import RunContext

        ctx = RunContext(opts, cfg, log, self.env, self.signals, self.started, self.server)
        if opts.follow:
            from stream.runs.live import LiveRun

            out = LiveRun(ctx).run()
            self.lost = out.lost
            return ctx.conclude(out)
        from stream.runs import batch

        return batch.document(ctx)

    def _serve(self, host: str, port: int) -> None:
        """Start the metrics server before any work, so a port that cannot be bound fails the run at once."""
        from stream.sinks.serve import ServeError, Server

        try:
            self.server = Server(host, port, "live" if self.options.follow else "batch")
        except ServeError as exc:
            raise JobError(str(exc)) from None
        self.log.info("serving metrics on %s/metrics (health: /healthz, readiness: /readyz)", self.server.url)

    def _publish(self, doc: dict[str, Any], code: int) -> int:
        from stream.sinks import metrics

        self.signals.finish()  # the work is over: nothing may stop the document now
        opts, log = self.options, self.log
        if opts.output:
            try:
                metrics.write(opts.output, doc)
                log.info("metrics written to %s", opts.output)
            except OSError as exc:
                return self._unwritable(f"the metrics file {opts.output} cannot be written: {_reason(exc)}")
        shown = doc
        if "by_key" in doc:  # thousands of keys would make one enormous log line; the document has them
            shown = {k: v for k, v in doc.items() if k != "by_key"}
            shown["by_key"] = f"{len(doc['by_key'])} keys (see the metrics document)"
        log.info("metrics: %s", metrics.encode(shown).decode().replace("\n", " "))
        wanted = not opts.quiet or opts.metrics_to_stdout  # --output - asks for it even so
        out = self.env.stdout_buffer
        if wanted and opts.signals != "-" and out is not None:
            try:
                out.write(metrics.encode(doc))
                out.flush()
            except BrokenPipeError:
                self._silence_stdout()
            except OSError as exc:  # e.g. redirected to a full disk: the printed copy is lost, so say so
                self._silence_stdout()
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

        self.signals.finish()
        self._silence_stdout()
        message = "the reader of the signals output closed it before the input was fully processed"
        self.log.info("%s; stopping", message)
        if self.options.output:
            try:
                metrics.write(self.options.output, metrics.failure(self.version, message))
            except OSError:
                pass
        return EXIT_BROKEN_PIPE

    def _unwritable(self, message: str) -> int:
        self.env.say(f"mlops-stream: error: {message}\n")
        return EXIT_FAILED

    def _silence_stdout(self) -> None:
        # Python flushes stdout at exit; once the reader is gone that flush would fail again, noisily.
        fd = self.env.stdout_fd
        if fd is None:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
        except (OSError, ValueError):
            pass


def _layout_settings(cfg: Config) -> str:
    """The input-layout settings that differ from their defaults, for the config's log line."""
    from stream.config import Config

    default = Config()
    shown = ("format", "delimiter", "header", "skip_lines", "decimal", "max_skipped")
    return "".join(f" {k}={getattr(cfg, k)!r}" for k in shown if getattr(cfg, k) != getattr(default, k))


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
