"""No credential a URL carries shows anywhere a run writes: a user and password before the host, a pre-signed S3 URL's
query and a ``?token=``, over every path a message takes (the error document, stderr, the log, a usage error, a
storage or Dask library's own words, the metrics server's scrape, the progress display on a terminal), against real
servers on loopback; and the environment's AWS secret is never echoed either."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import Body, closed_port, env_with_repo, http_server, ohlcv_csv, on_terminal, start_command

from stream.sources.remote import storage_error
from stream.text import line

HAVE = all(importlib.util.find_spec(m) is not None for m in ("fsspec", "aiohttp"))
pytestmark = pytest.mark.skipif(not HAVE, reason="fsspec and aiohttp are not installed (the test extra has them)")

PASSWORD = "S3cr3tPassw0rd"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
CREDENTIAL = f"{ACCESS_KEY}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN%2Bwith%2Fslashes%3D"
SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
TOKEN = "t0kenT0kenT0ken"
ENV_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the environment's AWS_SECRET_ACCESS_KEY
SECRETS = [PASSWORD, ACCESS_KEY, CREDENTIAL, SESSION_TOKEN, SIGNATURE, TOKEN, ENV_SECRET]
SECRETS += [unquote(s) for s in SECRETS if unquote(s) != s]

# Each URL kind as a template of the server's address and a path.
URLS = {
    "userinfo": "http://reader:" + PASSWORD + "@{host}/{path}",
    "presigned": (
        "http://{host}/{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + CREDENTIAL
        + "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token="
        + SESSION_TOKEN + "&X-Amz-Signature=" + SIGNATURE
    ),
    "token": "http://{host}/{path}?token=" + TOKEN,
}  # fmt: skip
CSV = ohlcv_csv([f"{100 + i % 7}.{i % 10}5" for i in range(200)]).encode()
LISTING = b'<html><body><a href="a.csv">a.csv</a> <a href="b.csv">b.csv</a></body></html>'
BAD = ohlcv_csv(["100", "101", "oops"]).encode()


@pytest.fixture(autouse=True)
def aws_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # In every run's environment (the children inherit it): present, so that a run could echo it.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)


class Site:
    """A CSV served on loopback: ``/d/`` is a folder listing of ``a.csv`` and ``b.csv`` (a bad row), any other path
    the same CSV; a GET of ``/held/...`` waits for ``hold()`` first (a slow server)."""

    def __init__(self) -> None:
        self.hold: Callable[[], object] = lambda: None
        self.host = ""

    def answer(self, method: str, path: str) -> tuple[int, Body]:
        path = path.split("?", 1)[0]
        body = LISTING if path == "/d/" else BAD if path == "/d/b.csv" else CSV
        return 200, [self.hold, body] if path.startswith("/held/") else body  # a HEAD's headers are not held


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    with http_server(s.answer) as s.host:
        yield s


def assert_hidden(*texts: str | bytes) -> None:
    for text in texts:
        shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for secret in SECRETS:
            assert secret not in shown, f"{secret!r} shows in:\n{shown[:3000]}"


def written(folder: Path) -> list[bytes]:
    """Every file a run wrote into ``folder`` (the log, the documents, the signals, any temporary file)."""
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


def run_and_check(run_cli, tmp_path: Path, args: list[str], code: int) -> str:
    """Run the command; check its exit code and that no secret shows anywhere. Returns stderr and the log, joined."""
    run = run_cli([*args, "--log-file", "run.log"])
    assert run.code == code, run.stderr
    run.assert_no_traceback()
    assert_hidden(run.stdout, run.stderr, *written(tmp_path))
    return run.stderr + run.log()


@pytest.mark.parametrize("kind", URLS)
def test_a_failing_url_shows_no_credential(run_cli, tmp_path: Path, kind: str) -> None:
    url = URLS[kind].format(host=f"127.0.0.1:{closed_port()}", path="x.csv")
    said = run_and_check(run_cli, tmp_path, ["--input", url, "--output", "m.json"], 1)
    assert "connection refused" in said and "***" in said  # the URL is shown, hidden where it must be


@pytest.mark.parametrize("kind", URLS)
def test_a_successful_run_shows_no_credential(run_cli, tmp_path: Path, site: Site, kind: str) -> None:
    url = URLS[kind].format(host=site.host, path="x.csv")
    said = run_and_check(run_cli, tmp_path, ["--input", url, "--output", "m.json", "--signals", "s.csv"], 0)
    assert "input opened: http://" in said and said.count("***") >= 2  # the argv line and the opened line


def test_a_bad_row_in_a_file_of_a_url_pattern_shows_no_credential(run_cli, tmp_path: Path, site: Site) -> None:
    # Several inputs: the bad row's message names the file it is in, a URL the listing gave.
    url = URLS["userinfo"].format(host=site.host, path="d/*.csv")
    said = run_and_check(run_cli, tmp_path, ["--input", url, "--output", "m.json"], 1)
    assert "b.csv" in said and "***@" in said


@pytest.mark.parametrize("kind", URLS)
def test_usage_errors_show_no_credential(run_cli, tmp_path: Path, kind: str) -> None:
    url = URLS[kind].format(host="127.0.0.1:9", path="x.csv")
    # Each message quotes the URL it refuses: a value that is not a number, an unknown argument.
    for args in (["--input", url, "--window", url], ["generate", "--rows", "5", url]):
        run = run_cli(args)
        assert run.code == 2 and ("expected a whole number" in run.stderr or "unexpected argument" in run.stderr), (
            run.stderr
        )
        assert "***" in run.stderr, run.stderr
        assert_hidden(run.stdout, run.stderr, *written(tmp_path))


def test_a_file_url_naming_a_host_shows_no_credential(run_cli, tmp_path: Path) -> None:
    said = run_and_check(run_cli, tmp_path, ["--input", f"file://reader:{PASSWORD}@elsewhere/x.csv"], 1)
    assert "file:///path" in said


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="Dask's distributed is not installed")
def test_dask_quoting_a_scheduler_address_shows_no_credential(run_cli, tmp_path: Path) -> None:
    # Dask's own words quote the address without its scheme ('reader:...@127.0.0.1:9').
    (tmp_path / "in.csv").write_bytes(CSV)
    args = ["--input", "in.csv", "--scheduler", f"tcp://reader:{PASSWORD}@127.0.0.1:9", "--output", "m.json"]
    said = run_and_check(run_cli, tmp_path, args, 1)
    assert "cannot reach the Dask scheduler" in said


def test_a_storage_library_text_is_cut_after_its_credentials_are_hidden() -> None:
    # The library's text is quoted cut short: wherever the cut falls, it never leaves a password without the "@"
    # after it that marks it as one (a user name of every length moves the cut through the password).
    for n in range(100, 260):
        url = f"http://{'r' * n}:{PASSWORD}@host/x.csv?token={TOKEN}"
        error = storage_error(RuntimeError(f"request to {url} failed"), "input x cannot be opened", "no x")
        shown = line(str(error))
        assert "RuntimeError: 'request to http://" in shown
        assert_hidden(shown)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is None, reason="s3fs is not installed")
def test_the_environment_s_aws_secret_is_not_echoed(run_cli, tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_MAX_ATTEMPTS": "1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }  # fmt: skip
    run = run_cli(["--input", "s3://bucket/x.csv", "--output", "m.json", "--log-file", "run.log"], env=env)
    assert run.code == 1 and "s3://bucket/x.csv" in run.stderr, run.stderr
    assert_hidden(run.stdout, run.stderr, *written(tmp_path))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


@pytest.mark.parametrize("kind", URLS)
def test_the_metrics_server_shows_no_credential(tmp_path: Path, site: Site, kind: str) -> None:
    scraped = threading.Event()
    site.hold = lambda: scraped.wait(60)  # the input's data comes once the run has been scraped
    url = URLS[kind].format(host=site.host, path="held/x.csv")
    args = ["--input", url, "--metrics-port", "0", "--log-file", "run.log", "--output", "m.json", "--quiet"]
    proc = start_command(args, tmp_path, stdin=subprocess.DEVNULL)
    try:

        def address() -> str | None:
            log = tmp_path / "run.log"
            text = log.read_text() if log.exists() else ""
            found = [w for w in text.split() if w.startswith("http://127.0.0.1:") and w.endswith("/metrics")]
            return found[0] if found else None

        metrics = str(wait_for(address, "the metrics server's address in the log"))
        scrapes = []
        for path in ("/metrics", "/healthz", "/readyz"):
            try:
                scrapes.append(urllib.request.urlopen(metrics.replace("/metrics", path), timeout=30).read())
            except urllib.error.HTTPError as exc:  # /readyz: 503 until the input is open
                scrapes.append(exc.read())
        assert b"mlops_stream_build_info" in scrapes[0]
        scraped.set()
        out, err = proc.communicate(timeout=60)
    finally:
        scraped.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert_hidden(out, err, *scrapes, *written(tmp_path))


@pytest.mark.parametrize("kind", URLS)
def test_the_progress_display_shows_no_credential(tmp_path: Path, site: Site, kind: str) -> None:
    # The data comes only once the display has shown, on a terminal as stderr (and stdout).
    shown = threading.Event()
    site.hold = lambda: shown.wait(60)
    url = URLS[kind].format(host=site.host, path="held/x.csv")

    def display(seen: bytes) -> None:
        if b"reading " in seen:
            shown.set()

    code, seen = on_terminal(["--input", url, "--output", "m.json"], tmp_path, _child_env(), stdout_too=True,
                             size=(30, 200), watch=display)  # fmt: skip
    assert code == 0, seen
    assert shown.is_set() and b"http://" in seen  # the display came, naming the input
    assert_hidden(seen, *written(tmp_path))


def _child_env() -> dict[str, str]:
    return env_with_repo({"TERM": "xterm-256color", "COLUMNS": "200"})
