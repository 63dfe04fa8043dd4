"""Bytes to exact values: lines, the layout of the file, rows, and the bad-row policy."""
