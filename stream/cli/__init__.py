"""The command line: arguments, checks, and exit codes."""

from stream.cli.main import entry, main

__all__ = ["entry", "main"]
