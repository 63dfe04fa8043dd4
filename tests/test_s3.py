"""Object storage for real: an S3 API server on loopback (moto's server, started here as a subprocess on a free
127.0.0.1 port that the workers of -n share) read through s3fs with AWS_ENDPOINT_URL — a glob of monthly Binance
kline zips (headerless, as Binance publishes them) and a .csv.gz,
on one process, --workers 2 and --cluster local:2, against the Fraction reference, byte-identical signals; and a
missing object, refused credentials, a refused connection and a failing server said as what they are."""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import os
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import exact_signals, read_signals_csv, run_command

from stream import generate

HAVE = all(importlib.util.find_spec(m) is not None for m in ("moto", "s3fs"))
pytestmark = pytest.mark.skipif(not HAVE, reason="moto[server] and s3fs are not installed (the test extra has them)")
HAVE_DASK = importlib.util.find_spec("distributed") is not None
WINDOW = 9
KLINES = ("--no-header", "--column", "5")  # Binance's klines: no header, the close is the fifth field


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# moto's S3 server on a free 127.0.0.1 port (shared_service's, or _moto's own): it says its address, and ends with
# its stdin.
MOTO_SERVER = """
import socket, sys
from moto.server import ThreadedMotoServer

with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
server.start()
print(f"http://127.0.0.1:{port}", flush=True)
sys.stdin.read()
server.stop()
"""


@contextlib.contextmanager
def _moto(folder: Path, **server_env: str) -> Iterator[dict[str, str]]:
    """A moto S3 server of its own (``MOTO_SERVER``, with ``server_env`` set for it); yields the environment that
    points clients at it."""
    log = folder / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, env={**os.environ, **server_env})  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        address = proc.stdout.readline().decode().strip()
        if not address:
            pytest.fail(f"the moto server did not start: {log.read_text(errors='replace')[-2000:]}")
        yield _clients(address, folder)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clients(endpoint: str, folder: Path) -> dict[str, str]:
    """The environment that points clients at the S3 server at ``endpoint``, with nothing of this machine's own AWS
    set-up."""
    empty = folder / "empty-aws-config"
    empty.write_text("")
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }


@pytest.fixture(scope="module")
def s3(shared_service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that points clients at the test session's moto S3 server (one for all the workers of -n)."""
    return _clients(shared_service("moto-s3", MOTO_SERVER), tmp_path_factory.mktemp("aws"))


def _filesystem(env: dict[str, str]) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], skip_instance_cache=True,
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]},
    )  # fmt: skip


@pytest.fixture(scope="module")
def bucket(
    s3: dict[str, str], shared_input, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], list[str], list[str]]:
    """A year of monthly Binance-style kline zips and one .csv.gz in a bucket; the closes of each, in order."""
    lines: list[str] = []
    for block in generate.binance(12 * 700, 21):
        lines += block
    closes = [line.split(",")[4] for line in lines]
    plain = io.BytesIO()
    generate.write(plain, 5000, 8)
    gz_closes = [line.split(",")[4] for line in plain.getvalue().decode().splitlines()[1:]]

    def fill(fh: Any) -> None:
        fs = _filesystem(s3)
        fs.mkdir("klines")
        for month in range(12):
            part = lines[month * 700 : (month + 1) * 700]
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(
                    f"BTCUSDT-1m-2024-{month + 1:02d}.csv",
                    "".join(x + "\n" for x in part),  # no header, as Binance's
                )
            fs.pipe(f"klines/spot/BTCUSDT-1m-2024-{month + 1:02d}.zip", out.getvalue())
        fs.pipe("klines/candles.csv.gz", gzip.compress(plain.getvalue()))
        fh.write(b"filled\n")

    # One worker of -n fills the bucket of the session's server (named by its port: a later server starts empty).
    port = s3["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]
    shared_input(f"s3-bucket-{port}", fill, tmp_path_factory.mktemp("bucket") / "filled")
    return s3, closes, gz_closes


def _args(url: str) -> list[str]:
    return ["--input", url, "--window", str(WINDOW), "--output", "metrics.json", "--log-file", "run.log"]


def _run(run_cli, env: dict[str, str], url: str, *extra: str) -> Any:
    return run_cli([*_args(url), *extra], env=env, timeout=240)


def _check(run: Any, closes: list[str], signals: Path) -> None:
    assert run.code == 0, run.stderr
    run.assert_no_traceback()
    want, _ = exact_signals(closes, WINDOW)
    assert run.file_doc()["value"] == round(sum(want) / len(want), 4)
    rows = read_signals_csv(signals.read_text())
    assert [r["close"] for r in rows] == closes
    assert [int(r["signal"]) for r in rows] == want


EXECUTORS = [
    ["--workers", "1"],
    ["--workers", "2"],
    pytest.param(["--cluster", "local:2"], marks=pytest.mark.skipif(not HAVE_DASK, reason="no dask[distributed]")),
]


MONTHS = "s3://klines/spot/BTCUSDT-1m-2024-*.zip"


@pytest.fixture(scope="module")
def one_process(bucket, shared_input, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], bytes]:
    """``one_process(at)``: the signals one process writes for the glob of monthly zips (linked at ``at``), what the
    other executors' are compared with byte for byte; one run for all the workers of -n."""
    env = bucket[0]

    def make(fh: Any) -> None:
        folder = tmp_path_factory.mktemp("one-process")
        one = run_command([*_args(MONTHS), *KLINES, "--signals", "one.csv", "--workers", "1"], folder, env=env,
                          timeout=240)  # fmt: skip
        assert one.code == 0, one.stderr
        fh.write((folder / "one.csv").read_bytes())

    return lambda at: shared_input("s3-monthly-zips-one-process.csv", make, at).read_bytes()


@pytest.mark.parametrize("executor", EXECUTORS, ids=["one-process", "workers-2", "cluster-local-2"])
def test_a_glob_of_monthly_zips_on_s3(run_cli, tmp_path: Path, bucket, one_process, executor: list[str]) -> None:
    env, closes, _ = bucket
    run = _run(run_cli, env, MONTHS, *KLINES, "--signals", "s.csv", *executor)
    _check(run, closes, tmp_path / "s.csv")
    planned = "12 of the inputs are compressed: each is one task" in run.log()
    assert planned == (executor != ["--workers", "1"])
    if not planned:
        return  # the one-process run itself: what the others are compared with below
    assert (tmp_path / "s.csv").read_bytes() == one_process(tmp_path / "one.csv")


@pytest.mark.parametrize("executor", EXECUTORS, ids=["one-process", "workers-2", "cluster-local-2"])
def test_a_csv_gz_on_s3(run_cli, tmp_path: Path, bucket, executor: list[str]) -> None:
    env, _, closes = bucket
    run = _run(run_cli, env, "s3://klines/candles.csv.gz", "--signals", "s.csv", *executor)
    _check(run, closes, tmp_path / "s.csv")


def test_a_damaged_object_is_a_clear_error(run_cli, bucket) -> None:
    env, _, _ = bucket
    fs = _filesystem(env)
    fs.pipe("klines/broken/cut.csv.gz", gzip.compress(b"close\n" + b"1.5\n" * 20000)[:-100])
    run = _run(run_cli, env, "s3://klines/broken/cut.csv.gz")
    assert run.code == 1
    run.assert_no_traceback()
    assert (
        run.doc()["error_message"] == "input s3://klines/broken/cut.csv.gz is a gzip file that ends early (truncated?)"
    )


def _error(run_cli, env: dict[str, str], url: str) -> str:
    run = _run(run_cli, env, url)
    assert run.code == 1, run.stderr
    run.assert_no_traceback()
    message = run.doc()["error_message"]
    assert "testing" not in message  # the credentials
    return message


def test_a_missing_object_does_not_exist(run_cli, bucket) -> None:
    env, _, _ = bucket
    assert _error(run_cli, env, "s3://klines/spot/nothing.csv") == "input s3://klines/spot/nothing.csv does not exist"


def test_access_denied_is_said_as_such(run_cli, tmp_path: Path) -> None:
    # A server that checks credentials from its first request on (moto's IAM check): ours are refused.
    with _moto(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as env:
        assert (
            _error(run_cli, env, "s3://data/x.csv")
            == "input s3://data/x.csv cannot be opened: access denied (HTTP 403)"
        )
        assert _error(run_cli, env, "s3://data/*.csv") == (
            "the input pattern s3://data/*.csv cannot be listed: access denied (HTTP 403)"
        )


def test_a_refused_connection_is_said_as_such(run_cli, s3: dict[str, str]) -> None:
    env = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    assert _error(run_cli, env, "s3://data/x.csv") == "input s3://data/x.csv cannot be opened: connection refused"


def test_a_failing_server_is_said_as_such(run_cli, s3: dict[str, str]) -> None:
    # moto does not fail on request: a server on loopback that answers every request with a 500 stands in for it.
    import http.server
    import threading

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_PUT = do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        env = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{httpd.server_address[1]}", "AWS_MAX_ATTEMPTS": "1"}
        assert (
            _error(run_cli, env, "s3://data/x.csv")
            == "input s3://data/x.csv cannot be opened: the server failed (HTTP 500)"
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
