"""The docs hold as written: alert rules fire when the docs say they do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECONDS = {"s": 1, "m": 60, "h": 3600}


def _rule(name: str) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    return next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == name)


def _first_firing(threshold: float, hold: float, interval: float) -> float:
    """When Prometheus first fires an ``age > threshold`` rule held ``for: hold`` after a feed stops at time 0: the
    age grows with the clock; each evaluation (every ``interval``) sees the age of its moment; a rule fires at the
    first evaluation at which it has been true for ``hold`` since it turned pending."""
    pending = None
    t = 0.0
    while True:
        t += interval
        if t > threshold:
            pending = t if pending is None else pending
            if t - pending >= hold:
                return t


def test_the_feed_stalled_alert_fires_when_the_docs_say() -> None:
    rule = _rule("MlopsStreamFeedStalled")
    threshold = float(re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip()).group(1))  # type: ignore[union-attr]
    hold = int(rule["for"][:-1]) * SECONDS[rule["for"][-1]]
    row = next(
        ln for ln in (ROOT / "docs" / "monitoring.md").read_text().splitlines() if "MlopsStreamFeedStalled" in ln
    )
    said = 60 * int(re.search(r"(\d+) minutes", row).group(1))  # type: ignore[union-attr]
    for interval in (1.0, 15.0, 30.0, 60.0):  # Prometheus' usual evaluation intervals
        fired = _first_firing(threshold, hold, interval)
        assert said <= fired <= said + 2 * interval, (interval, fired, said)
