"""Canonical JSON: the one serialisation that hashes and digests are computed over."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no insignificant space and unescaped UTF-8: stable for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
