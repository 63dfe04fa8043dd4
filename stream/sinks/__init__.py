"""Where results go: metrics, signals, the log, the progress display and the metrics server."""
