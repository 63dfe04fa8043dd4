"""Bytes from where the data lives: files, globs, stdin, URLs, archives and growing files; no CSV here."""
