"""Seeds Python's and numpy's generators; numpy is seeded when a run first needs it, so others never import it."""

from __future__ import annotations

import random
import sys
from types import ModuleType

_seed: int | None = None


def seed(value: int) -> None:
    """Seed every generator the run uses, before any computation."""
    global _seed
    _seed = value
    random.seed(value)
    if "numpy" in sys.modules:
        _seed_numpy(sys.modules["numpy"])


def numpy() -> ModuleType:
    """Import numpy for a code path that needs it, seeded like the rest of the run."""
    import numpy as np

    if getattr(np, "_mlops_stream_seeded", None) != _seed:
        _seed_numpy(np)
    return np


def _seed_numpy(np: ModuleType) -> None:
    if _seed is not None:
        np.random.seed(_seed % 2**32)
    np._mlops_stream_seeded = _seed  # type: ignore[attr-defined]
