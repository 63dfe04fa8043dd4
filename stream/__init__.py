"""mlops-stream: exact streaming rolling-mean signals for OHLCV CSV from files, pipes and live feeds.

From Python: ``stream.process(source, window=..., signals=True)`` (stream/api.py) returns the metrics document and the
signals the command would write."""

__version__ = "0.1.0"
__all__ = ["Result", "__version__", "process"]

TYPE_CHECKING = False  # typing is not imported: the command imports this package first of all
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> "Any":  # a string: typing is not imported when the module runs
    # stream.api is loaded on first use, so `import stream` (and the command's start-up) costs what it did; and the
    # modules that import `stream` for its version do not depend on the API module above them.
    if name in ("process", "Result"):
        import importlib

        return getattr(importlib.import_module("stream.api"), name)
    raise AttributeError(f"module 'stream' has no attribute {name!r}")
