"""--metrics-port against hostile clients: a real live run's server while clients hold connections open, send nothing,
trickle bytes, or send huge request lines and headers; its threads, memory and log are read from outside."""

from __future__ import annotations

import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TRACEBACK_MARKERS, env_with_repo
from tests.test_serve import families, port_from_log, scrape, wait_for

IDLE_CLIENTS = 1500
ADDRESS_SPACE = 4 << 30


class Served:
    """A live run serving metrics: its process, port and folder."""

    def __init__(self, p: subprocess.Popen, port: int, folder: Path) -> None:
        self.p = p
        self.port = port
        self.folder = folder

    def status(self) -> dict[str, int]:
        """Threads, VmRSS and VmHWM (KiB) of the run, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
        return out


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A --follow run with its server answering, under a 4 GiB address-space limit (where a thread per connection
    ran out after about 350 clients); at the end, stopped, and its stderr and log free of tracebacks."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the run's threads and memory from /proc")
    (tmp_path / "live.csv").write_text("timestamp,close\n1,100\n2,101\n")
    p = subprocess.Popen(
        [sys.executable, "-m", "stream", "--input", "live.csv", "--follow", "--metrics-port", "0", "--log-file",
         "run.log"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env_with_repo(), preexec_fn=limit_address_space,
    )  # fmt: skip
    try:
        port = port_from_log(tmp_path / "run.log", p)
        wait_for(lambda: families(scrape(port)[1]).get("mlops_stream_rows_processed_total") == 2, "the rows counted")
        yield Served(p, port, tmp_path)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    log = (tmp_path / "run.log").read_text()
    for text in (err.decode(), log):
        assert not any(m in text for m in TRACEBACK_MARKERS), text
        # At most one line a minute says connections were dropped at the limit; none for each connection.
        assert len(re.findall("reached its limit", text)) <= 1, text
    assert p.returncode == 0, err.decode()


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process's soft limit on open files raised to its hard limit, for the clients' sockets; skipped when
    the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_CLIENTS + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} open files; the hard limit (ulimit -Hn) is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def exchange(port: int, request: bytes, timeout: float = 15.0) -> tuple[bytes, bool]:
    """Send ``request`` (from a thread, so a server that answers early is heard) and read until the server closes:
    what it answered, and whether it closed cleanly (end of file rather than a reset)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        try:
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)  # all sent: the server need not wait for more
        except OSError:  # the server answered and closed before taking it all
            pass

    sender = threading.Thread(target=send)
    sender.start()
    got = b""
    clean = False
    try:
        while True:
            part = conn.recv(1 << 16)
            if not part:
                clean = True
                break
            got += part
    except ConnectionResetError:
        pass
    finally:
        sender.join()
        conn.close()
    return got, clean


def status_of(answer: bytes) -> int | None:
    hit = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(hit.group(1)) if hit else None


def healthz_seconds(port: int) -> float:
    t0 = time.monotonic()
    code, body = scrape(port, "/healthz", timeout=5.0)
    assert (code, body) == (200, "ok\n")
    return time.monotonic() - t0


@pytest.mark.usefixtures("many_files")
def test_healthz_answers_while_1500_idle_clients_hold_connections(served: Served) -> None:
    """Half the clients send nothing, half the start of a request they never finish; /healthz is asked again and
    again meanwhile and after, and the run keeps its threads and memory."""
    before = served.status()
    probes: list[tuple[int, str, float]] = []  # answer, body, seconds until answered
    dropped = [0]
    done = threading.Event()

    def probe() -> None:  # /healthz again and again while the clients connect
        while not done.is_set():
            t0 = time.monotonic()
            answer: tuple[int, str] = (0, "no answer within 10 s")
            while time.monotonic() - t0 < 10:
                try:
                    answer = scrape(served.port, "/healthz", timeout=5.0)
                    break
                except OSError:
                    # Dropped at the limit before its request arrived (it looked like the idle clients): asked again,
                    # as an orchestrator's next probe would.
                    dropped[0] += 1
            probes.append((*answer, time.monotonic() - t0))
            done.wait(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    idle: list[socket.socket] = []
    try:
        for i in range(IDLE_CLIENTS):
            idle.append(socket.create_connection(("127.0.0.1", served.port), timeout=10))
            if i % 2:
                idle[-1].sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        during = len(probes)
        after = [healthz_seconds(served.port) for _ in range(20)]
        now = served.status()
    finally:
        done.set()
        prober.join()
        for conn in idle:
            conn.close()
    gain = now["VmHWM"] - before["VmRSS"]
    worst = max((seconds for _, _, seconds in probes[:during]), default=0.0)
    print(
        f"/healthz: {during} probes while {IDLE_CLIENTS} clients connected, max {worst:.3f} s ({dropped[0]} dropped "
        f"and asked again); 20 after, max {max(after):.3f} s; threads {before['Threads']} -> {now['Threads']}; "
        f"RSS peak gain {gain / 1024:.1f} MiB"
    )
    assert all(code == 200 and body == "ok\n" for code, body, _ in probes), probes
    assert now["Threads"] <= before["Threads"], "a thread per connection"
    assert gain < 100 << 10
    assert healthz_seconds(served.port) < 5


def test_long_header_lines_from_many_clients_cost_bounded_memory(served: Served) -> None:
    """100 clients at once, each with four 64 KB header lines: each is refused with 431 (or dropped, past the
    connection limit), and the run's memory hardly moves."""
    before = served.status()
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 65000) for i in range(4))
    request = b"GET /metrics HTTP/1.1\r\n" + pad + b"\r\n"
    results: list[tuple[bytes, bool]] = []
    clients = [threading.Thread(target=lambda: results.append(exchange(served.port, request))) for _ in range(100)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    codes = [status_of(answer) for answer, _ in results]
    assert set(codes) <= {431, None} and codes.count(431) >= 1, codes
    gain = served.status()["VmHWM"] - before["VmRSS"]
    print(f"RSS peak gain with 100 clients sending 64 KB header lines: {gain / 1024:.1f} MiB")
    assert gain < 100 << 10
    assert served.status()["Threads"] <= before["Threads"]
    assert healthz_seconds(served.port) < 5


def test_6_mb_of_headers_get_431_and_the_connection_closed(served: Served) -> None:
    before = served.status()
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"b" * 1000) for i in range(6000))
    answer, clean = exchange(served.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
    assert status_of(answer) == 431, answer[:200]
    assert answer.endswith(b"the request headers are longer than 32 KiB\n")
    assert clean, "the connection was reset, not closed"
    gain = served.status()["VmHWM"] - before["VmRSS"]
    print(f"RSS peak gain with 6 MB of headers: {gain / 1024:.1f} MiB")
    assert gain < 100 << 10


def test_bad_requests_get_their_status(served: Served) -> None:
    cases = {
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n": 414,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n": 405,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n": 400,
        b"GET /metrics\r\n\r\n": 400,
        b"GET /nothing-here HTTP/1.0\r\n\r\n": 404,
        b"GET /healthz?x=1 HTTP/1.0\n\n": 200,
    }
    for request, code in cases.items():
        answer, clean = exchange(served.port, request)
        assert status_of(answer) == code and clean, (request[:40], answer[:200])
    assert b"Allow: GET\r\n" in exchange(served.port, b"DELETE / HTTP/1.1\r\n\r\n")[0]


def test_idle_and_slow_clients_are_dropped_after_the_timeout(served: Served) -> None:
    """One client sends nothing; another sends a header byte at a time and never finishes: both are closed about
    REQUEST_TIMEOUT after they connected."""
    from stream.sinks.listener import REQUEST_TIMEOUT

    idle = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    slow = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    t0 = time.monotonic()
    slow.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    # The slow client: another byte whenever 0.2 s pass without the server closing.
    while not select.select([slow], [], [], 0.2)[0]:
        assert time.monotonic() - t0 < REQUEST_TIMEOUT + 20, "the slow client was never dropped"
        slow.send(b"s")
    slow_after = time.monotonic() - t0
    assert status_of(slow.recv(1 << 16)) == 408
    idle_answer = idle.recv(1 << 16)  # waits, with the socket's timeout, for the server to close it
    idle_after = time.monotonic() - t0
    assert status_of(idle_answer) == 408
    slow.close()
    idle.close()
    assert REQUEST_TIMEOUT - 0.5 <= slow_after <= REQUEST_TIMEOUT + 15
    assert REQUEST_TIMEOUT - 0.5 <= idle_after <= REQUEST_TIMEOUT + 15
    assert healthz_seconds(served.port) < 5
