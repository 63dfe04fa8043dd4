"""mlops-stream: exact streaming rolling-mean signals for OHLCV CSV from files, pipes and live feeds."""

__version__ = "0.1.0"
