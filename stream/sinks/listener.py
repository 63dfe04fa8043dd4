"""A small HTTP GET server on one selector loop, bounded in connections, time and memory whatever clients send; slow
answers (a metrics scrape) are made on one helper thread."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from stream.sinks.log import log

MAX_CONNECTIONS = 64  # open at once; past it, the one that has waited longest for its request is dropped
REQUEST_TIMEOUT = 5.0  # seconds from the connection to the end of its request: idle and slow clients are dropped
WRITE_TIMEOUT = 5.0  # seconds a client has to take its answer
# Seconds to read and discard what a client still sends after its answer (a refused one may be mid-request): closing
# with unread bytes would reset the connection, and the client could lose the answer.
LINGER = 2.0
MAX_REQUEST_LINE = 8 << 10  # longer: 414
MAX_HEADERS = 32 << 10  # the request line and headers together; more: 431
READ_SIZE = 8 << 10  # one recv: a connection never holds more than MAX_HEADERS + READ_SIZE of what it was sent
ACCEPT_BATCH = 16  # connections accepted per turn of the loop, so the ones already open are read in between
WARN_EVERY = 60.0  # seconds between two warnings that the connection limit was reached
# The most of one core the slow answers may take: the next waits until its CPU time is this share of the time since
# (but no longer than SLOW_WAIT, so a costly answer never makes the next scraper time out).
SLOW_SHARE = 0.02
SLOW_WAIT = 1.0
TEXT = "text/plain; charset=utf-8"

Answer = tuple[int, bytes, str]  # status, body, content type
PHRASES = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}  # fmt: skip
READING, WAITING, WRITING, DRAINING = range(4)


def _refusal(code: int, why: str) -> Answer:
    return code, why.encode() + b"\n", TEXT


def response(answer: Answer) -> bytes:
    code, body, kind = answer
    allow = "Allow: GET\r\n" if code == 405 else ""
    head = (
        f"HTTP/1.1 {code} {PHRASES.get(code, 'Unknown')}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{allow}\r\n"
    )
    return head.encode("latin-1") + body


class Connection:
    """One client: what it sent so far (bounded), or what is left to send it."""

    __slots__ = ("buf", "deadline", "opened", "out", "path", "searched", "sock", "state")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.path: str | None = None  # once the request line is read
        self.searched = 0  # where the search for the end of the headers goes on
        self.state = READING
        self.opened = now
        self.deadline = now + REQUEST_TIMEOUT
        self.out = memoryview(b"")

    def parse(self) -> Answer | str | None:
        """The path of the complete GET request read so far, an Answer refusing it, or None while it is incomplete.

        Hand-written rather than http.server, which gives each connection a thread and reads header lines of any
        length: what a server beside a running job must not do. Only what GET needs: the request line, and the blank
        line that ends the headers (their contents are not used)."""
        buf = self.buf
        if self.path is None:
            nl = buf.find(b"\n", 0, MAX_REQUEST_LINE + 1)
            if nl < 0:
                return _refusal(414, "the request line is longer than 8 KiB") if len(buf) > MAX_REQUEST_LINE else None
            parts = bytes(buf[:nl]).rstrip(b"\r").split(b" ")
            if len(parts) != 3 or not parts[1] or not parts[2].startswith(b"HTTP/1."):
                return _refusal(400, "not an HTTP/1 request")
            if parts[0] != b"GET":
                return _refusal(405, "only GET is served")
            self.path = parts[1].split(b"?", 1)[0].decode("latin-1")
            self.searched = nl
        start = max(self.searched - 2, 0)  # a blank line may straddle two reads
        self.searched = len(buf)
        found = [i for i in (buf.find(b"\n\n", start), buf.find(b"\n\r\n", start)) if i >= 0]
        if (min(found) if found else len(buf)) > MAX_HEADERS:
            return _refusal(431, "the request headers are longer than 32 KiB")
        return self.path if found else None


class Listener:
    """Answers GET requests on ``sock`` (bound and listening) from the thread that calls ``run``, until ``stop``.

    ``quick(path)`` answers on the loop itself (it must not block), or returns None for a path that ``slow(path)``
    answers on a helper thread; requests for that path that wait together share one answer."""

    def __init__(self, sock: socket.socket, quick: Callable[[str], Answer | None], slow: Callable[[str], Answer]):
        self.sock = sock
        self.quick = quick
        self.slow = Slow(slow, self._wake)
        self.conns: dict[int, Connection] = {}
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel = selectors.DefaultSelector()
        self._paused_until = 0.0  # out of file descriptors: accepting waits a moment
        self._warned_at = -WARN_EVERY

    def stop(self) -> None:
        self.stopping = True
        self.slow.stop()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # the pipe is full (the loop wakes anyway) or closed (the loop is gone)
            pass

    def run(self) -> None:
        sel = self._sel
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, self)
        try:
            while not self.stopping:
                deadlines = [c.deadline for c in self.conns.values() if c.state != WAITING]
                if self._paused_until:
                    deadlines.append(self._paused_until)
                timeout = max(min(deadlines) - time.monotonic(), 0.0) if deadlines else None
                accept = False
                for key, _ in sel.select(timeout):
                    if key.data is None:
                        accept = True  # last: a request that has arrived is read before anyone is dropped
                    elif key.data is self:
                        self._answered()
                    else:
                        self._turn(key.data)
                if accept:
                    self._accept()
                self._expire(time.monotonic())
        finally:
            for c in list(self.conns.values()):
                self._close(c)
            sel.close()

    def close(self) -> None:
        """Free the wake-up pipe, once ``run`` has returned and nothing can write to it."""
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ---- accepting ------------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The listening socket stays readable: accepting again at once would spin.
                    self._pause(f"cannot accept a connection: {os.strerror(exc.errno).lower()}")
                    return
                continue  # the client went away before it was accepted
            if len(self.conns) >= MAX_CONNECTIONS and not self._make_room():
                self._dropped()
                sock.close()
                continue
            sock.setblocking(False)
            c = Connection(sock, time.monotonic())
            self.conns[sock.fileno()] = c
            self._sel.register(sock, selectors.EVENT_READ, c)

    def _make_room(self) -> bool:
        """Drop a client already answered, else the connection that has waited longest for its request (idle or slow),
        so a prompt client such as a probe always gets in; False when every one is being answered."""
        for c in self.conns.values():
            if c.state == DRAINING:
                self._close(c)
                return True
        for c in sorted((c for c in self.conns.values() if c.state == READING), key=lambda c: c.opened):
            self._read(c)  # its request may have arrived since the loop looked: then it is answered, not dropped
            if c.state == READING and self.conns.get(c.sock.fileno()) is c:
                self._close(c)
                self._dropped()
                return True
            if len(self.conns) < MAX_CONNECTIONS:
                return True
        return False

    def _dropped(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "the metrics server is at its limit of %d open connections: it drops those that have waited longest "
                "for their request (clients that connect and send nothing, or send slowly); said at most once a minute",
                MAX_CONNECTIONS,
            )  # fmt: skip

    def _pause(self, why: str) -> None:
        self._sel.unregister(self.sock)
        self._paused_until = time.monotonic() + 0.5
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("the metrics server %s; said at most once a minute", why)

    # ---- one connection -------------------------------------------------------------------------------------------

    def _turn(self, c: Connection) -> None:
        if c.state == READING:
            self._read(c)
        elif c.state == WRITING:
            self._write(c)
        elif c.state == DRAINING:
            self._drain(c)

    def _read(self, c: Connection) -> None:
        try:
            data = c.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            self._close(c)
            return
        if not data:  # hung up before its request was complete
            self._close(c)
            return
        c.buf += data
        got = c.parse()
        if got is None:
            return
        if isinstance(got, tuple):
            self._respond(c, response(got))
            return
        c.buf = bytearray()
        answer = self.quick(got)
        if answer is not None:
            self._respond(c, response(answer))
            return
        c.state = WAITING
        self._sel.unregister(c.sock)
        self.slow.submit(c)

    def _answered(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        for conns, data in self.slow.done():
            for c in conns:
                if self.conns.get(c.sock.fileno()) is c:
                    self._sel.register(c.sock, selectors.EVENT_READ, c)
                    self._respond(c, data)

    def _respond(self, c: Connection, data: bytes) -> None:
        c.state = WRITING
        c.out = memoryview(data)
        c.deadline = time.monotonic() + WRITE_TIMEOUT
        self._write(c)

    def _write(self, c: Connection) -> None:
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            self._close(c)
            return
        c.out = c.out[sent:]
        if c.out:
            self._sel.modify(c.sock, selectors.EVENT_WRITE, c)
            return
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(c)
            return
        c.state = DRAINING
        c.deadline = time.monotonic() + LINGER
        self._sel.modify(c.sock, selectors.EVENT_READ, c)

    def _drain(self, c: Connection) -> None:
        for _ in range(16):  # at most 16 reads a turn, so one fast sender cannot hold the loop
            try:
                if not c.sock.recv_into(_SCRATCH):
                    break
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break
        else:
            return
        self._close(c)

    def _expire(self, now: float) -> None:
        if self._paused_until and now >= self._paused_until:
            self._paused_until = 0.0
            self._sel.register(self.sock, selectors.EVENT_READ, None)
        for c in [c for c in self.conns.values() if c.state != WAITING and c.deadline <= now]:
            if c.state == READING:
                try:  # a courtesy for a person at a terminal; a client that is not reading misses nothing
                    c.sock.send(response(_refusal(408, "the request took too long")))
                except OSError:
                    pass
            self._close(c)

    def _close(self, c: Connection) -> None:
        self.conns.pop(c.sock.fileno(), None)
        if c.state != WAITING:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        c.sock.close()


_SCRATCH = bytearray(64 << 10)  # what a refused client still sends is read into this and forgotten


class Slow:
    """The helper thread for slow answers, started at the first: requests for one path that arrive while it works
    are answered together by its next call. ``wake()`` tells the loop that answers are ready (``done``)."""

    def __init__(self, answer: Callable[[str], Answer], wake: Callable[[], None]) -> None:
        self.answer = answer
        self.wake = wake
        self._cond = threading.Condition()
        self._pending: list[Connection] = []
        self._done: list[tuple[list[Connection], bytes]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, c: Connection) -> None:
        with self._cond:
            self._pending.append(c)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mlops-stream-scrape", daemon=True)
                self._thread.start()
            self._cond.notify()

    def done(self) -> list[tuple[list[Connection], bytes]]:
        with self._cond:
            done, self._done = self._done, []
        return done

    def stop(self) -> None:
        """No answer is handed back (nor ``wake`` called) once this returns."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _work(self) -> None:
        ready_at = 0.0  # when the next answer may start
        failed = False
        first = True  # the first answer pays for imports: its cost does not tell what the next will cost
        while True:
            with self._cond:
                while not self._stopping and (not self._pending or time.monotonic() < ready_at):
                    self._cond.wait(max(ready_at - time.monotonic(), 0.0) if self._pending else None)
                if self._stopping:
                    return
                pending, self._pending = self._pending, []
            by_path: dict[str, list[Connection]] = {}
            for c in pending:
                by_path.setdefault(c.path or "/", []).append(c)
            cpu = time.thread_time()
            answers = []
            for path, conns in by_path.items():
                try:
                    answer = self.answer(path)
                except Exception as exc:  # a broken install, say: said once, and each request gets a 500
                    if not failed:
                        log.error("the metrics server cannot answer %s: %s: %s", path, type(exc).__name__, exc)
                        log.debug("details", exc_info=True)
                    failed = True
                    answer = 500, b"internal error; the log file has the details\n", TEXT
                answers.append((conns, response(answer)))
            # Back-to-back requests wait, so that however many clients ask, the answers cost at most SLOW_SHARE.
            if not first:
                ready_at = time.monotonic() + min((time.thread_time() - cpu) * (1 / SLOW_SHARE - 1), SLOW_WAIT)
            first = False
            with self._cond:
                if self._stopping:
                    return
                self._done.extend(answers)
                self.wake()  # under the lock: stop() cannot return between the check and the write
