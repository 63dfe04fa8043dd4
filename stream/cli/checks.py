"""From the command line to a run's typed ``Options``: the parser made from the options table, and the checks that
refuse, as usage errors, flags that cannot run together and a file given two roles (an output that is an input)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from functools import partial

from stream.cli.options import LAYOUT, LIVE, ONE_OF, OPTIONS, SCALE, SHORT, one_of
from stream.runs.options import Environment, Options, Overrides

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, NoReturn


def parser_class(env: Environment, bounded: bool = True) -> type[argparse.ArgumentParser]:
    """argparse's parser, writing to ``env``'s streams; ``bounded``: its one-line errors cut short and escaped, as
    they quote arguments, which may be huge or hold a terminal's escape sequences."""

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # No abbreviations: a script that says --inp would break the day another flag starts with it.
            kwargs.setdefault("allow_abbrev", False)
            super().__init__(*args, **kwargs)

        def add_argument(self, *args: Any, **kwargs: Any) -> Any:
            # argparse checks each flag's metavar with a new formatter, which, given no width, asks shutil (and it
            # imports bz2 and lzma) for the terminal's: the check needs no width, so only help and usage ask.
            given = self.formatter_class
            self.formatter_class = partial(given, width=80)  # type: ignore[call-arg]
            try:
                return super().add_argument(*args, **kwargs)
            finally:
                self.formatter_class = given

        def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
            parsed, extras = self.parse_known_args(args, namespace)
            if extras:
                self.error(unrecognized(extras, self._option_string_actions))
            return parsed

        def _print_message(self, message: str, file: Any = None) -> None:
            # argparse names sys.stdout (help, version) or sys.stderr (the rest); the run's own streams stand in.
            if message:
                env.say(message, stdout=file is not None and file is sys.stdout)

        def error(self, message: str) -> NoReturn:
            if bounded:
                from stream.text import line

                message = line(message, 1000)
            # Two lines, all on stderr: a short usage (the full one is dozens of lines, --help) and the error.
            env.say(f"usage: {self.prog} [options]  ('{self.prog} --help' lists them)\n{self.prog}: error: {message}\n")
            raise SystemExit(2)

    return Parser


def build_parser(env: Environment | None = None) -> argparse.ArgumentParser:
    """The command's parser, made from ``OPTIONS``; it writes to ``env``'s streams (default: the process's)."""
    from stream import __version__

    p = parser_class(env if env is not None else Environment())(
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
        if "choices" in settings and "type" not in settings:  # a mistyped choice gets the likeliest one suggested
            settings = {**settings, "type": one_of(tuple(settings["choices"]))}
        groups[group].add_argument(*([SHORT[flag]] if flag in SHORT else []), flag, **settings)
    p.add_argument("-V", "--version", action="version", version=f"mlops-stream {__version__}")
    return p


def unrecognized(extras: list[str], flags: Iterable[str]) -> str:
    """The usage error for arguments no option takes (``extras``): the first unknown flag and the flag of ``flags``
    it most likely means, or, with none, the first stray argument.

    >>> unrecognized(["--inptu", "data.csv"], ["-i", "--input", "--output"])
    'unrecognized option --inptu; did you mean --input?'
    >>> unrecognized(["--inptu", "--wnidow=3"], ["--input", "--window"])
    'unrecognized option --inptu (and 1 more); did you mean --input?'
    >>> unrecognized(["data.csv"], ["--input"])
    "unexpected argument 'data.csv': inputs are named with --input PATH (-i PATH)"
    """
    from stream.text import EXCERPT, excerpt

    flags = list(flags)
    unknown = [arg.partition("=")[0] for arg in extras if arg.startswith("-") and arg != "-"]
    if not unknown:
        hint = ": inputs are named with --input PATH (-i PATH)" if "--input" in flags else ""
        return f"unexpected argument {excerpt(extras[0])}{hint}"
    import difflib

    flag = unknown[0] if len(unknown[0]) <= EXCERPT else excerpt(unknown[0])
    close = difflib.get_close_matches(unknown[0], [f for f in flags if len(f) > 2], n=1, cutoff=0.6)
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    return f"unrecognized option {flag}{more}" + (f"; did you mean {close[0]}?" if close else "")


def read(argv: list[str], env: Environment) -> Options:
    """The options ``argv`` asks for, checked; a usage error (SystemExit 2, said on ``env``'s stderr) if they cannot
    run. Nothing is opened for writing here."""
    parser = build_parser(env)
    args = parser.parse_args(argv)
    inputs = args.input
    if inputs is None:
        if env.stdin is None or env.stdin_isatty:
            parser.error("no input: pass --input PATH, or pipe CSV into stdin")
        inputs = ["-"]
    if inputs.count("-") > 1:
        parser.error("stdin ('-') can be given as --input only once")
    if args.key is not None and not args.key.strip():
        parser.error("--key must name a column")
    one: str | None = _followed(parser, inputs) if args.follow else inputs[0] if len(inputs) == 1 else None
    if args.follow and (args.workers or args.cluster is not False or args.scheduler):
        parser.error("--workers, --cluster and --scheduler apply to batch runs, not to --follow")
    if not args.follow and (args.idle_timeout is not None or args.checkpoint is not None):
        parser.error("--idle-timeout and --checkpoint apply to live runs: add --follow")
    if args.reverse and (args.follow or one is None or one == "-"):
        parser.error("--reverse reads one regular file backwards from its end: not a pipe, several inputs or --follow")
    if args.checkpoint is not None and one == "-":
        parser.error("--checkpoint needs --input PATH (a file): a pipe cannot be resumed at a position")
    to_stdout = args.output == "-"
    if to_stdout and args.signals == "-":
        parser.error("--output - and --signals - cannot both go to stdout: pass a file for one of them")
    options = Options(
        inputs=tuple(inputs), input=one, config=args.config, output=None if to_stdout else args.output,
        metrics_to_stdout=to_stdout, log_file=args.log_file, signals=args.signals, signals_format=args.signals_format,
        quiet=args.quiet, no_progress=args.no_progress, follow=args.follow, idle_timeout=args.idle_timeout,
        checkpoint=args.checkpoint, reverse=args.reverse, workers=args.workers, cluster=args.cluster,
        scheduler=args.scheduler, block_size=args.block_size,
        overrides=Overrides(
            window=args.window, on_bad_row=args.on_bad_row, key=args.key, column=args.column,
            delimiter=args.delimiter, header=False if args.no_header else None, skip_lines=args.skip_lines,
            decimal=args.decimal, max_skipped=args.max_skipped, format=args.format, metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        ),
    )  # fmt: skip
    clash = role_clash(options, env)
    if clash is not None:
        parser.error(clash)
    return options


def _followed(parser: argparse.ArgumentParser, inputs: list[str]) -> str:
    """The local path (or ``-``) a ``--follow`` run follows: one input (a file, or a glob pattern of files read in
    name order), local, not compressed."""
    if len(inputs) > 1:
        parser.error(
            "--follow follows one input: pass a single --input, a file or a pattern of dated files in quotes "
            "(--input 'feeds/BTCUSDT-1m-*.csv'), which are followed in name order as one stream"
        )
    from stream.errors import SourceError
    from stream.sources.files import local_path

    try:
        path = local_path(inputs[0])
    except SourceError as exc:
        parser.error(str(exc))
    if path is None:
        parser.error("--follow follows a local file or stdin, not a URL")
    from stream.sources.globs import is_pattern, matches
    from stream.sources.magic import compressed_file

    try:
        files = [] if path == "-" else matches(path) if is_pattern(path) else [path]
    except SourceError as exc:
        parser.error(str(exc))
    for name in files:
        kind = compressed_file(name)
        if kind is not None:
            parser.error(
                f"--follow reads a plain (uncompressed) CSV or JSON Lines file as it grows, and {name} is "
                f"{kind}-compressed"
            )
    return path


def role_clash(options: Options, env: Environment) -> str | None:
    """Why the run would write over one of its own inputs, its config or another of its outputs; None if it would
    not. Looked at before anything is opened for writing."""
    from stream.errors import SourceError
    from stream.fs import roles
    from stream.sources.files import expand, local_path
    from stream.sources.globs import is_pattern, matches_path
    from stream.text import line

    opts = options
    config = opts.config if opts.config is not None else ("config.yaml" if os.path.exists("config.yaml") else None)
    inputs = [roles.Role.of("the config", config)] if config is not None else []
    names = [opts.input] if opts.follow and opts.input is not None else opts.inputs
    for name in names:
        if name == "-":
            found = roles.Role.of_fd("the input on stdin", env.stdin_fd) if env.stdin_fd is not None else None
            inputs.extend([found] if found is not None else [])
            continue
        try:
            path = local_path(name)
            followed = opts.follow and path is not None and not is_pattern(path)
            local = [] if path is None else [path] if followed else [spec.name for spec in expand([path])]
        except SourceError:  # a glob that matches nothing, a bad file:// URL: the run itself says so
            local = [name]
        inputs.extend(roles.Role.of("the input", path) for path in local)
    flags = [("--output", opts.output), ("--signals", opts.signals), ("--log-file", opts.log_file)]
    flags.append(("--checkpoint", opts.checkpoint))
    if opts.follow and opts.input is not None and opts.input != "-" and is_pattern(opts.input):
        # A followed pattern's files come later too: an output it matches would be read as one of them.
        for flag, path in flags:
            if path is not None and path != "-" and matches_path(opts.input, path):
                return (
                    f"{flag} {line(path)} matches the followed pattern {line(opts.input)}: the run would read it as "
                    "one of its input files; pass a path the pattern does not match"
                )
    outputs = [roles.Role.of(flag, path) for flag, path in flags if path is not None and path != "-"]
    if (opts.signals == "-" or opts.metrics_to_stdout or not opts.quiet) and env.stdout_fd is not None:
        found = roles.Role.of_fd("stdout (--signals -)" if opts.signals == "-" else "stdout", env.stdout_fd)
        outputs.extend([found] if found is not None else [])
    try:
        roles.check(inputs, outputs)
    except roles.RoleClash as exc:
        return line(str(exc))
    return None
