"""What the SDK end-to-end scripts (e2e_openai.py, e2e_anthropic.py) share: a
failed check, and a compact dump of an SDK object for its message."""

from __future__ import annotations

import json
from typing import Any


class CheckFailed(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def dump(obj: Any) -> str:
    """Compact JSON of an SDK object (pydantic model) or plain value, for messages."""
    try:
        if hasattr(obj, "model_dump"):
            obj = obj.model_dump(exclude_none=True)
        text = json.dumps(obj, default=str)
    except Exception:  # noqa: BLE001 - best effort only
        text = repr(obj)
    return text if len(text) <= 600 else text[:600] + "..."
