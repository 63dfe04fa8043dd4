"""The batch run: the inputs read to their end (by one process or the parallel plan, stream/runs/parallel.py), with the
progress display and the metrics server's view kept up to date."""

from __future__ import annotations

import time

from stream.runs.context import Outcome, RunContext

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

    from stream.core.tally import Tally
    from stream.parsing.layout import Layout
    from stream.parsing.reader import Reader
    from stream.runs.pipeline import Pipeline
    from stream.runs.plan.merge import Reached
    from stream.sinks.progress import Progress, Work
    from stream.sinks.serve import BatchView
    from stream.sources.files import Input, Spec


def run(ctx: RunContext) -> Outcome:
    """Read the inputs named by ``ctx.options.inputs`` to their end; returns the Outcome for the command to publish."""
    from stream.parsing.layout import LayoutRequest
    from stream.parsing.reader import Reader
    from stream.runs import parallel

    opts, cfg = ctx.options, ctx.cfg
    specs, sizes = _inputs(ctx)
    several = len(specs) > 1
    name = f"{len(specs)} inputs ({specs[0].label} ... {specs[-1].label})" if several else specs[0].label
    if several:
        ctx.log.info(
            "inputs: %d files read as one stream, in this order: %s", len(specs), ", ".join(s.label for s in specs)
        )
    reader = Reader(
        cfg.column, cfg.on_bad_row, report=ctx.bad_log, keep_text=opts.signals is not None, key=cfg.key,
        file=specs[0].label if several else None, request=LayoutRequest.of(cfg),
    )  # fmt: skip
    sink = ctx.signals(staged=True)
    pipeline = ctx.pipeline(sink)
    t_read = time.perf_counter()
    with _Watch(ctx, pipeline, reader, name, sizes) as watch:
        tally, by_key = parallel.run(
            specs, sizes, reader, pipeline,
            parallel.Reading(opts.workers, opts.cluster, opts.scheduler, opts.block_size, opts.reverse),
            parallel.Hooks(watch.after_batch, watch.opened, watch.found, watch.blocks_done, watch.stage, watch.reach),
        )  # fmt: skip
    layout = watch.layout()
    ctx.announce(layout)
    ctx.bad_log.summary()
    return Outcome(tally, layout, reader.skips, name, time.perf_counter() - t_read, by_key)


def document(ctx: RunContext) -> dict[str, Any]:
    """A whole batch run: the inputs read, the metrics document made and the signals output committed; a run that
    fails or is stopped abandons its signals output, leaving an earlier signals file as it was."""
    try:
        doc = ctx.conclude(run(ctx))
        # The work is done: a stop from now on is ignored, so the signals taking their place and the document
        # saying so cannot be parted (a stop between them left the new signals under an error document).
        ctx.stops.finish()
        ctx.close_signals()
    except BaseException:
        ctx.abandon_signals()
        raise
    return doc


def _inputs(ctx: RunContext) -> tuple[list[Spec], list[int | None]]:
    """The input files, each checked readable (a missing or unreadable one fails the run before any output is
    written), and their sizes (None: a stream)."""
    from stream.errors import SourceError
    from stream.sources.files import check_readable, expand

    stdin = ctx.env.stdin_buffer
    if stdin is None and "-" in ctx.options.inputs:
        raise SourceError("stdin is closed: pipe CSV into it, or pass --input PATH")
    specs = expand(ctx.options.inputs, stdin)
    for spec in specs:
        if not spec.url and spec.name != "-":
            check_readable(spec.name)
    return specs, [spec.size() for spec in specs]


class _Watch:
    """What a batch run shows while it reads (the progress display, the metrics server's view) and the position in
    its inputs they read; and the layout it found."""

    def __init__(self, ctx: RunContext, pipeline: Pipeline, reader: Reader, name: str, sizes: list[int | None]):
        self.ctx = ctx
        self.pipeline = pipeline
        self.reader = reader
        self.known = [s for s in sizes if s is not None]
        self.total = sum(self.known) if len(self.known) == len(sizes) else None
        self.done = 0  # bytes of the inputs before the current one
        self.current: Input | None = None  # the input being read: its position counts compressed bytes, if it is
        self.planned: int | None = None  # the parallel plan's bytes of finished blocks, once it runs
        self.reached: Reached | None = None  # how far the parallel plan's passes have got, once it runs
        self.plan_layout: Layout | None = None  # the layout the parallel plan found (one process: the reader's)
        self.display: Progress | None = None
        env = ctx.env
        if env.stderr_isatty:  # the common case, stderr elsewhere, does not even load the display's module
            from stream.sinks import progress  # rich itself is imported only if the display starts

            if progress.wanted(ctx.options, env):
                self.display = progress.Progress(pipeline, name, work=self.work, stream=env.stderr)
        self.view: BatchView | None = None
        if ctx.server is not None:
            from stream.sinks.serve import BatchView

            self.view = BatchView(pipeline, lambda: reader.skips, self.position, self.total)
            ctx.server.attach(self.view)

    def opened(self, i: int, inp: Input) -> None:
        self.ctx.log.info("input opened: %s", inp.describe())
        self.done = sum(self.known[:i]) if self.total is not None else 0
        self.current = inp

    def position(self) -> int:
        if self.planned is not None:
            return self.planned
        offset = self.reader.offset
        return self.done + (self.current.position(offset) if self.current is not None else offset)

    def work(self) -> Work:
        """What the display's bar shows: the bytes read, or the parallel plan's passes over its blocks."""
        from stream.sinks.progress import Work

        r = self.reached
        if r is None:
            return Work(self.position(), self.total)
        note = f"blocks: {r.written}/{r.blocks} done"
        if r.passes == 2:  # the first pass counts each block's rows, the second computes and writes their signals
            note = f"blocks: {r.first}/{r.blocks} counted, {r.written}/{r.blocks} done"
        return Work(*r.work(), note)

    def layout(self) -> Layout | None:
        return self.plan_layout if self.plan_layout is not None else self.reader.layout

    def after_batch(self) -> None:
        self.ctx.announce(self.layout())
        if self.view is not None:
            self.view.publish()

    def found(self, plan_layout: Layout) -> None:
        self.plan_layout = plan_layout

    def blocks_done(self, done_bytes: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        # What the display and the server read: the rows of the finished blocks, and their bytes as the position.
        self.pipeline.take_counts(tally, by_key)
        self.planned = done_bytes

    def stage(self, label: str | None) -> None:
        if self.display is not None:
            self.display.stage(label)

    def reach(self, state: Reached) -> None:
        self.reached = state

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        """The display gives way to the summary line when the run went well; the server's view is finished."""
        if self.display is not None:
            self.display.close(ok=kind is None)
        if self.view is not None:
            self.view.finish()
