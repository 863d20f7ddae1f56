"""What the SDK end-to-end scripts (e2e_openai.py, e2e_anthropic.py) share: a
failed check, a compact dump of an SDK object for its message, and the
`USAGE` line each model answer is reported with."""

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


USAGE_PREFIX = "USAGE "


def report_usage(what: str, usage: Any) -> None:
    """Prints `USAGE {"what": .., "usage": {..} | null}`: the usage object the SDK
    parsed from one model answer (None when the answer carried none, e.g. a
    stream without `include_usage`), one line per request that reached a model,
    in the order they were sent, so a test can compare each with what the
    upstream counted."""
    if usage is not None and hasattr(usage, "model_dump"):
        usage = usage.model_dump(exclude_none=True)
    print(USAGE_PREFIX + json.dumps({"what": what, "usage": usage}, default=str), flush=True)
