"""Storage failures said as what they are, against real servers on loopback: an HTTP server started here answering
403, 404 or 500, a closed port, a name that does not resolve and a server that never answers; the messages show no
credentials of the URL (its user and password, a signed URL's query)."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import closed_port, http_server, ohlcv_csv

HAVE = all(importlib.util.find_spec(m) is not None for m in ("fsspec", "aiohttp"))
pytestmark = pytest.mark.skipif(not HAVE, reason="fsspec and aiohttp are not installed (the test extra has them)")
SECRET = "hunter2secret"
CSV = ohlcv_csv(["100", "101", "102"]).encode()


def answer(method: str, path: str) -> tuple[int, bytes]:
    """``/403/...``, ``/404/...``, ``/500/...`` answer with that status (files and folder listings alike); any other
    path is a small CSV file."""
    first = path.lstrip("/").split("/", 1)[0]
    status = int(first) if first.isdigit() else 200
    return status, CSV if status == 200 else b"no"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The address (``127.0.0.1:PORT``) of an HTTP server answering as ``answer`` says."""
    with http_server(answer) as host:
        yield host


def failed(run_cli, url: str, **kw: object) -> str:
    """The one-line error of a run reading ``url`` (also the metrics document's), checked for credentials."""
    run = run_cli(["--input", url, "--output", "m.json", "--quiet"], **kw)
    assert run.code == 1, run.stderr
    run.assert_no_traceback()
    message = run.file_doc("m.json")["error_message"]
    assert run.stderr == f"mlops-stream: error: {message}\n"
    assert SECRET not in message
    return message


CASES = [
    ("403/x.csv", "input http://{host}/403/x.csv cannot be opened: access denied (HTTP 403)"),
    ("404/x.csv", "input http://{host}/404/x.csv does not exist"),
    ("500/x.csv", "input http://{host}/500/x.csv cannot be opened: the server failed (HTTP 500)"),
    ("403/*.csv", "the input pattern http://{host}/403/*.csv cannot be listed: access denied (HTTP 403)"),
    ("500/*.csv", "the input pattern http://{host}/500/*.csv cannot be listed: the server failed (HTTP 500)"),
]


@pytest.mark.parametrize(("path", "said"), CASES, ids=[c[0] for c in CASES])
def test_an_http_status_is_said_as_such(run_cli, server: str, path: str, said: str) -> None:
    # With a user and password before the host (shown hidden) and a signed URL's query after the path (not shown).
    url = f"http://reader:{SECRET}@{server}/{path}?X-Amz-Signature={SECRET}"
    assert failed(run_cli, url) == said.format(host=f"***@{server}")


def test_the_same_server_serves_a_file_that_is_there(run_cli, tmp_path: Path, server: str) -> None:
    # The failures above are the server's answers, not a client that cannot talk to it.
    run = run_cli(["--input", f"http://{server}/fine/x.csv?sig={SECRET}", "--output", "m.json", "--quiet"])
    assert run.code == 0, run.stderr
    assert run.file_doc("m.json")["rows_processed"] == 3


def test_a_file_at_a_web_address_costs_one_look_at_its_size_and_one_get(run_cli) -> None:
    asked: list[str] = []

    def counted(method: str, path: str) -> tuple[int, bytes]:
        asked.append(method)
        return 200, CSV

    with http_server(counted) as host:
        run = run_cli(["--input", f"http://{host}/x.csv", "--output", "m.json", "--quiet"])
    assert run.code == 0, run.stderr
    assert run.file_doc("m.json")["rows_processed"] == 3
    assert asked == ["HEAD", "GET"]  # the size (for the progress display and the plan), then the data


def test_a_refused_connection_is_said_as_such(run_cli) -> None:
    port = closed_port()
    assert (
        failed(run_cli, f"http://127.0.0.1:{port}/x.csv")
        == f"input http://127.0.0.1:{port}/x.csv cannot be opened: connection refused"
    )
    assert failed(run_cli, f"http://127.0.0.1:{port}/d/*.csv") == (
        f"the input pattern http://127.0.0.1:{port}/d/*.csv cannot be listed: connection refused"
    )


def test_a_name_that_does_not_resolve_is_said_as_such(run_cli) -> None:
    # .invalid is reserved: no resolver anywhere knows a name in it.
    message = failed(run_cli, "http://no-such-host.invalid/x.csv")
    assert message == "input http://no-such-host.invalid/x.csv cannot be opened: name not resolved"


def test_a_server_that_never_answers_is_a_timeout(run_cli) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel's backlog; nothing ever reads or answers them
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        # fsspec's own setting, from the environment: how long the HTTP client waits for an answer.
        env = {"FSSPEC_HTTP": '{"client_kwargs": {"read_timeout": 1}}'}
        message = failed(run_cli, f"http://{host}/x.csv", env=env)
    assert message == f"input http://{host}/x.csv cannot be opened: timed out"


def test_a_server_without_byte_ranges_is_read_in_one_stream(run_cli, tmp_path: Path) -> None:
    # Python's own HTTP server answers every GET with the whole file; fsspec's default handle asks for 5 MiB ranges
    # and gives up on the second. The file is read as one streamed GET, and workers fall back to one process.
    from stream import generate

    with open(tmp_path / "big.csv", "wb") as fh:
        generate.write(fh, 90_000, 5)
    body = (tmp_path / "big.csv").read_bytes()
    assert len(body) > 6 << 20
    local = run_cli(["--input", "big.csv", "--output", "local.json", "--quiet"])
    assert local.code == 0, local.stderr
    with http_server(lambda method, path: (200, body)) as host:
        url = f"http://{host}/big.csv"
        for workers in ("1", "2"):
            run = run_cli(["--input", url, "--workers", workers, "--output", "m.json", "--log-file", "r.log", "-q"])
            assert run.code == 0, run.stderr
            run.assert_no_traceback()
            got, want = run.file_doc("m.json"), run.file_doc("local.json")
            assert {k: v for k, v in got.items() if k != "latency_ms"} == {
                k: v for k, v in want.items() if k != "latency_ms"
            }
            said = f"the server of {url} does not answer byte ranges; reading it with one process"
            assert (said in run.log("r.log")) == (workers == "2")
