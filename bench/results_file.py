"""Where each benchmark leaves its figures, so that ``bench/summary.py`` can put them side by side.

Each benchmark writes ``bench/results/<name>.json``: the figures of the broker and of its
baseline measured in the same run, and the ratio between them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def record(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` as ``bench/results/<name>.json`` with when and where they were taken."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
