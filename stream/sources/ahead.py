"""Decompressing in a thread of its own, a few reads ahead of the reader."""

from __future__ import annotations

from stream.sources.decoders import ByRead1

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any


class Ahead(ByRead1):
    """Decompresses in a thread of its own, a few reads ahead of the reader: zlib, bz2, lzma and zstd let go of the
    GIL while they work, so on a machine with a free core decompressing overlaps parsing. Errors reach the reader in
    order, as they would have without the thread."""

    DEPTH = 4  # reads held ready: with 256 KiB reads, about a MiB
    READ = 256 << 10

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self._stream = stream
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._piece = b""
        self._at = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name="mlops-stream-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = self._stream.read1(self.READ)
            except BaseException as exc:  # handed to the reader, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except Exception:  # queue.Full: the reader is busy; look again whether it is still wanted
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read1(self, size: int = -1) -> bytes:
        if self._at >= len(self._piece):
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._piece, self._at = item, 0
        if self._at == 0 and (size < 0 or size >= len(self._piece)):
            self._at = len(self._piece)
            return self._piece
        end = len(self._piece) if size < 0 else self._at + size
        out = self._piece[self._at : end]
        self._at += len(out)
        return out

    def close(self) -> None:
        """Stop the thread (it ends after the read in hand) and close the stream it reads."""
        self._stop.set()
        self._thread.join(5)  # a pipe's read may block for longer: the thread is a daemon, left to its read
        if not self._thread.is_alive():
            self._stream.close()
