"""`python -m stream` runs the same command as `mlops-stream`."""

from stream.cli import entry

raise SystemExit(entry())
