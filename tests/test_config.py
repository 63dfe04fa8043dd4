"""Contract point 1: the config is a validated YAML mapping; every mistake is named, and defaults are announced."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ERROR_KEYS, ohlcv_csv, write, write_config

from stream import config
from stream.config import Config, ConfigError

GOOD = 'seed: 7\nwindow: 3\nversion: "v9"\n'


def load_text(tmp_path: Path, text: str) -> Config:
    return config.load(str(write(tmp_path / "c.yaml", text)))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


def test_a_complete_config_is_read(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, GOOD + "column: Close\non_bad_row: skip\n")
    assert (cfg.seed, cfg.window, cfg.version, cfg.column, cfg.on_bad_row) == (7, 3, "v9", "Close", "skip")
    assert "c.yaml" in cfg.source


def test_optional_keys_default(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, GOOD)
    assert (cfg.column, cfg.on_bad_row) == ("close", "fail")


def test_a_bom_before_the_yaml_is_accepted(tmp_path: Path) -> None:
    assert load_text(tmp_path, "\ufeff" + GOOD).window == 3


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (GOOD + "windw: 5\n", ["'windw'; did you mean window?"]),
        (GOOD + "on_bad_rows: skip\n", ["'on_bad_rows'; did you mean on_bad_row?"]),
        (GOOD + "smoothing: 3\n", ["'smoothing' (known keys: seed, window, version, column,"]),
    ],
)
def test_unknown_keys_are_named(tmp_path: Path, text: str, names: list[str]) -> None:
    message = error_of(tmp_path, text)
    assert "unknown key" in message
    for name in names:
        assert name in message


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    # YAML parsers keep the last value silently; a config that says window twice is a mistake to point at.
    message = error_of(tmp_path, "seed: 42\nwindow: 5\nversion: v1\nwindow: 50\n")
    assert message.endswith("line 4: the key 'window' is given twice")
    assert "given twice" in error_of(tmp_path, "{seed: 1, window: 2, version: v, seed: 3}\n")


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "<<: {seed: 1, window: 2}\nversion: v\nwindow: 3\n")
    assert (cfg.seed, cfg.window, cfg.version) == (1, 3, "v")


@pytest.mark.parametrize("missing", ["seed", "window", "version"])
def test_every_required_key_is_required(tmp_path: Path, missing: str) -> None:
    text = "".join(line + "\n" for line in GOOD.splitlines() if not line.startswith(missing))
    message = error_of(tmp_path, text)
    assert f"missing required key '{missing}'" in message


@pytest.mark.parametrize(
    ("line", "key", "found"),
    [
        ("window: true", "window", "boolean true"),
        ("window: yes", "window", "boolean true"),
        ("seed: false", "seed", "boolean false"),
        ("window: 5.0", "window", "float 5.0"),
        ("seed: 4.2", "seed", "float 4.2"),
        ('window: "5"', "window", "str '5'"),
        ("seed: forty-two", "seed", "str 'forty-two'"),
        ("window: ", "window", "null"),
        ("version: 1", "version", "int 1"),
        ("version: 1.5", "version", "float 1.5"),
        ("window: [5]", "window", "list"),
    ],
)
def test_wrong_types_name_the_key_and_what_was_expected(tmp_path: Path, line: str, key: str, found: str) -> None:
    base = {"seed": "seed: 42", "window": "window: 5", "version": "version: v1"}
    base[key] = line
    message = error_of(tmp_path, "\n".join(base.values()) + "\n")
    expected = "a string" if key == "version" else "an integer"
    assert f"'{key}' must be {expected}" in message
    assert found in message


@pytest.mark.parametrize("window", [0, -1, -100])
def test_window_must_be_at_least_one(tmp_path: Path, window: int) -> None:
    message = error_of(tmp_path, f"seed: 1\nwindow: {window}\nversion: v1\n")
    assert "'window' must be at least 1" in message
    assert str(window) in message


def test_bad_optional_values(tmp_path: Path) -> None:
    assert "'on_bad_row' must be 'fail' or 'skip'" in error_of(tmp_path, GOOD + "on_bad_row: ignore\n")
    assert "'column'" in error_of(tmp_path, GOOD + 'column: "  "\n')
    assert "'column' must be a column name or a 1-based position" in error_of(tmp_path, GOOD + "column: 1.5\n")
    assert "'column' as a position must be at least 1" in error_of(tmp_path, GOOD + "column: 0\n")
    assert "'decimal' must be '.' or ','" in error_of(tmp_path, GOOD + "decimal: x\n")
    assert "'delimiter': expected one character" in error_of(tmp_path, GOOD + "delimiter: ab\n")
    assert "'max_skipped': expected a fraction" in error_of(tmp_path, GOOD + "max_skipped: 2\n")
    assert "'skip_lines' must be 0 or more" in error_of(tmp_path, GOOD + "skip_lines: -1\n")
    assert "'header' must be true or false" in error_of(tmp_path, GOOD + "header: 1\n")


@pytest.mark.parametrize(("written", "share"), [("0.05", 0.05), ("5%", 0.05), ('"12.5 %"', 0.125), ("100%", 1.0)])
def test_the_skipped_share_is_a_fraction_or_a_percentage(tmp_path: Path, written: str, share: float) -> None:
    assert load_text(tmp_path, GOOD + f"max_skipped: {written}\n").max_skipped == share


def test_a_percentage_past_100_or_a_word_is_refused_with_both_forms_shown(tmp_path: Path) -> None:
    for written in ("150%", "lots"):
        message = error_of(tmp_path, GOOD + f"max_skipped: {written}\n")
        assert "such as 0.05, or a percentage such as 5%" in message and written in message


@pytest.mark.parametrize(
    ("text", "found"),
    [("- seed\n- window\n", "list"), ("just a string\n", "str 'just a string'"), ("", "nothing"), ("42\n", "int 42")],
)
def test_a_document_that_is_not_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    message = error_of(tmp_path, text)
    assert "expected a mapping" in message
    assert found in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 42\nwindow: [5\nversion: v1\n", 3),
        ("seed: 42\nwindow: 5\n  version: v1\n", 3),
        ("seed: 42\nwindow: 5\nversion: v1\n\tcolumn: x\n", 4),
        ('seed: 42\nwindow: 5\nversion: "v1\n', 4),
        ("seed: 42\nwindow: *nowhere\nversion: v1\n", 2),
    ],
)
def test_invalid_yaml_names_its_line(tmp_path: Path, text: str, line: int) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(f"config file {tmp_path / 'c.yaml'} line {line}:")


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(str(tmp_path))


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    write(tmp_path / "l1.yaml", b"seed: 42\nwindow: 5\nversion: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(str(tmp_path / "l1.yaml"))


@pytest.mark.parametrize(
    "text",
    [
        "seed: 42\nwindow: 5\nversion: !!python/object/apply:os.system ['touch {marker}']\n",
        "seed: 42\nwindow: 5\nversion: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "!!python/object/apply:os.system ['touch {marker}']\n",
        "seed: 42\nwindow: 5\nversion: !!python/name:os.system\n",
        "seed: 42\nwindow: 5\nversion: !custom {marker}\n",
    ],
)
def test_yaml_tags_that_build_objects_are_refused_and_never_run(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "executed"
    message = error_of(tmp_path, text.format(marker=marker))
    assert "tags that build objects are not allowed" in message
    assert not marker.exists()


# ---- the command: defaults, ./config.yaml, overrides -------------------------------------------------------------


def test_defaults_when_there_is_no_config(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2", "3", "4", "5", "6"]))
    run = run_main(["--input", "in.csv", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    doc = run.doc()
    assert (doc["version"], doc["seed"]) == ("v1", 42)
    # Window 5 (the default): rows 5 and 6 have a mean and are above it.
    assert doc["value"] == round(2 / 6, 4)
    assert "config from built-in defaults: seed=42 window=5 version=v1" in run.log()


def test_config_yaml_in_the_working_folder_is_used(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2", "3", "4", "5", "6"]))
    write_config(tmp_path, "seed: 3\nwindow: 2\nversion: local\n")
    run = run_main(["--input", "in.csv", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    doc = run.doc()
    assert (doc["version"], doc["seed"], doc["value"]) == ("local", 3, round(5 / 6, 4))
    assert "config from config file config.yaml: seed=3 window=2 version=local" in run.log()


def test_explicit_config_wins_over_the_local_one(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2", "3"]))
    write_config(tmp_path, "seed: 3\nwindow: 2\nversion: local\n")
    write_config(tmp_path, "seed: 4\nwindow: 3\nversion: other\n", name="other.yaml")
    doc = run_main(["--input", "in.csv", "--config", "other.yaml"]).doc()
    assert (doc["version"], doc["seed"], doc["value"]) == ("other", 4, round(1 / 3, 4))


def test_window_and_policy_flags_override_the_config(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2", "x", "3", "4"]))
    write_config(tmp_path, "seed: 1\nwindow: 4\nversion: v2\non_bad_row: fail\n")
    failed = run_main(["--input", "in.csv"])
    assert failed.code == 1
    run = run_main(["--input", "in.csv", "--window", "2", "--on-bad-row", "skip", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    doc = run.doc()
    assert (doc["rows_processed"], doc["rows_skipped"], doc["value"]) == (4, 1, 0.75)
    assert "window=2" in run.log() and "on_bad_row=skip" in run.log()
    # The policy can also come from the config alone.
    write_config(tmp_path, "seed: 1\nwindow: 2\nversion: v2\non_bad_row: skip\n")
    assert run_main(["--input", "in.csv"]).doc()["rows_skipped"] == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("seed: 42\nwindow: 5\nversion: v1\nwindo: 3\n", "unknown key 'windo'"),
        ("seed: 42\nwindow: 0\nversion: v1\n", "'window' must be at least 1"),
        ("seed: true\nwindow: 5\nversion: v1\n", "'seed' must be an integer"),
        ("seed: 42\nwindow: [5\n", "line 3"),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_config_errors_end_to_end(run_main, tmp_path: Path, text: str, words: str) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2"]))
    write_config(tmp_path, text, name="bad.yaml")
    run = run_main(["--input", "in.csv", "--config", "bad.yaml", "--output", "metrics.json"])
    assert run.code == 1
    run.assert_no_traceback()
    doc = run.file_doc()
    assert list(doc) == ERROR_KEYS
    assert doc["version"] is None  # the config could not be read, so there is no version to report
    assert words in doc["error_message"]
    assert "bad.yaml" in doc["error_message"]
    assert words in run.stderr


def test_a_malicious_config_runs_nothing_end_to_end(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2"]))
    marker = tmp_path / "pwned"
    write_config(tmp_path, f"seed: 42\nwindow: 5\nversion: !!python/object/apply:os.system ['touch {marker}']\n")
    run = run_main(["--input", "in.csv"])
    assert run.code == 1
    assert "tags that build objects are not allowed" in run.doc()["error_message"]
    assert not marker.exists()
    run.assert_no_traceback()


def test_the_command_line_takes_the_skipped_share_as_a_percentage_too(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "x", "2", "3"]))
    args = ["--input", "in.csv", "--on-bad-row", "skip", "--output", "m.json"]
    assert run_main([*args, "--max-skipped", "20%"]).code == 1  # 1 of 4 rows: 25%
    run = run_main([*args, "--max-skipped", "25%"])
    assert run.code == 0 and run.file_doc("m.json")["rows_skipped"] == 1
    refused = run_main([*args, "--max-skipped", "250%"])
    assert refused.code == 2 and "or a percentage such as 5%, got '250%'" in refused.stderr
