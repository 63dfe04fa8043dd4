"""The batch run: the inputs read to their end (by one process or the parallel plan, stream/parallel.py), with the
progress display and the metrics server's view kept up to date."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from stream.runs.context import Outcome, RunContext

if TYPE_CHECKING:
    from stream.core.tally import Tally
    from stream.parsing.layout import Layout
    from stream.sources.files import Input


def run(ctx: RunContext) -> Outcome:
    """Read the inputs named by ``ctx.args.inputs`` to their end; returns the Outcome for the command to publish."""
    from stream.parsing.layout import LayoutRequest
    from stream.parsing.reader import Reader
    from stream.runs import parallel
    from stream.sources.files import check_readable, expand

    args, cfg, log = ctx.args, ctx.cfg, ctx.log
    specs = expand(args.inputs)
    for spec in specs:  # a missing or unreadable input fails the run before any output is written
        if not spec.url and spec.name != "-":
            check_readable(spec.name)
    sizes = [spec.size() for spec in specs]
    known = [s for s in sizes if s is not None]
    total = sum(known) if len(known) == len(sizes) else None
    several = len(specs) > 1
    name = f"{len(specs)} inputs ({specs[0].label} ... {specs[-1].label})" if several else specs[0].label
    if several:
        log.info(
            "inputs: %d files read as one stream, in this order: %s", len(specs), ", ".join(s.label for s in specs)
        )
    reader = Reader(
        cfg.column, cfg.on_bad_row, report=ctx.bad_log, keep_text=args.signals is not None, key=cfg.key,
        file=specs[0].label if several else None, request=LayoutRequest.of(cfg),
    )  # fmt: skip
    sink = ctx.signals(staged=True)
    pipeline = ctx.pipeline(sink)
    t_read = time.perf_counter()
    done = [0]  # bytes of the inputs before the current one
    current: list[Input] = []  # the input being read: its position counts compressed bytes for a compressed one
    planned: list[int] = []  # the parallel plan's bytes of finished blocks, once it runs
    layouts: list[Layout] = []  # the layout the parallel plan found (one process: the reader's)

    def opened(i: int, inp: Input) -> None:
        log.info("input opened: %s", inp.describe())
        done[0] = sum(known[:i]) if total is not None else 0
        current[:] = [inp]

    def position() -> int:
        if planned:
            return planned[0]
        return done[0] + (current[0].position(reader.offset) if current else reader.offset)

    display = None
    if sys.stderr.isatty():  # the common case, stderr elsewhere, does not even load the display's module
        from stream.sinks import progress  # rich itself is imported only if the display starts

        if progress.wanted(args):
            display = progress.Progress(pipeline, name, total=total, position=position)
    view = None
    if ctx.server is not None:
        from stream.sinks.serve import BatchView

        view = BatchView(pipeline, lambda: reader.skips, position, total)
        ctx.server.attach(view)

    def layout() -> Layout | None:
        return layouts[0] if layouts else reader.layout

    def after_batch() -> None:
        ctx.announce(layout())
        if display is not None:
            display.tick()
        if view is not None:
            view.publish()

    def found(plan_layout: Layout) -> None:
        layouts[:] = [plan_layout]

    def blocks_done(done_bytes: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        # What the display and the server read: the rows of the finished blocks, and their bytes as the position.
        pipeline.take_counts(tally, by_key)
        planned[:] = [done_bytes]

    try:
        tally, by_key = parallel.run(
            specs, sizes, reader, pipeline,
            parallel.Options(args.workers, args.cluster, args.scheduler, args.block_size, args.reverse),
            parallel.Hooks(after_batch, opened, found, blocks_done),
        )  # fmt: skip
    finally:
        if display is not None:
            display.close()
        if view is not None:
            view.finish()
    ctx.announce(layout())
    ctx.bad_log.summary()
    return Outcome(tally, layout(), reader.skips, name, time.perf_counter() - t_read, by_key)
