#!/usr/bin/env python3
"""End-to-end check of the gateway's Messages API with the official `anthropic`
Python package.

Standalone (no pytest): run against a gateway that is already listening, e.g.

    .venv/bin/python tests/python/e2e_anthropic.py \
        --base-url http://127.0.0.1:8080 --api-key sk-consumer \
        --model claude-test --limited-model claude-limited

The gateway must route `--model` (with `--api-key` accepted as a consumer key,
in `x-api-key` and as `Authorization: Bearer`), route `--limited-model` to a
route whose requests quota allows one request per minute, and have no route for
"no-such-model". `--checks` picks the checks (comma-separated; all by default).

Prints one line per check and exits 0 only when every check passes; before
it, a `USAGE {json}` line per Messages request that reached a model
(e2e_common's `report_usage`), in the order sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, Callable, Dict, List

from e2e_common import CheckFailed, check, dump, report_usage

try:
    import anthropic
    from anthropic import Anthropic
except ImportError:  # pragma: no cover - environment problem, not a test failure
    print(
        "e2e_anthropic: the `anthropic` package is not installed for this python "
        f"({sys.executable}); run ./scripts/test.sh (creates .venv with it)",
        file=sys.stderr,
    )
    sys.exit(2)

UNROUTED_MODEL = "no-such-model"
MESSAGES = [{"role": "user", "content": "Say hello in a few words."}]


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# ---------------------------------------------------------------- checks


def check_create(client: Anthropic, a: argparse.Namespace) -> str:
    resp = client.messages.create(
        model=a.model, max_tokens=64, system="You answer briefly.", messages=MESSAGES
    )
    report_usage("create", resp.usage)
    check(resp.type == "message", f"type is {resp.type!r}, want 'message'")
    check(resp.role == "assistant", f"role is {resp.role!r}")
    check(bool(resp.id), "no id")
    check(text_of(resp).strip() != "", f"no text: {dump(resp)}")
    check(resp.stop_reason == "end_turn", f"stop_reason {resp.stop_reason!r}")
    check(resp.usage.input_tokens > 0, f"usage.input_tokens = {resp.usage.input_tokens}")
    check(resp.usage.output_tokens > 0, f"usage.output_tokens = {resp.usage.output_tokens}")
    return f"{text_of(resp)!r}, usage {resp.usage.input_tokens}+{resp.usage.output_tokens}"


def check_bearer(_: Anthropic, a: argparse.Namespace) -> str:
    # Claude Code with ANTHROPIC_AUTH_TOKEN: the key as `Authorization: Bearer`
    client = Anthropic(base_url=a.base_url, auth_token=a.api_key, api_key=None, max_retries=0)
    resp = client.messages.create(model=a.model, max_tokens=16, messages=MESSAGES)
    report_usage("bearer", resp.usage)
    check(text_of(resp).strip() != "", f"no text: {dump(resp)}")
    return "Authorization: Bearer accepted"


def check_stream(client: Anthropic, a: argparse.Namespace) -> str:
    kinds: List[str] = []
    with client.messages.stream(model=a.model, max_tokens=64, messages=MESSAGES) as s:
        for ev in s:
            kinds.append(ev.type)
        final = s.get_final_message()
    report_usage("stream", final.usage)
    check(kinds and kinds[0] == "message_start", f"first event {kinds[:1]}")
    check("content_block_delta" in kinds, f"no content_block_delta in {kinds}")
    check(kinds[-1] == "message_stop", f"last event {kinds[-1:]}")
    check(text_of(final).strip() != "", f"no text: {dump(final)}")
    check(final.usage.output_tokens > 0, f"final usage {dump(final.usage)}")
    check(final.stop_reason == "end_turn", f"stop_reason {final.stop_reason!r}")
    return f"{len(kinds)} events, {text_of(final)!r}"


def check_count_tokens(client: Anthropic, a: argparse.Namespace) -> str:
    n = client.messages.count_tokens(model=a.model, messages=MESSAGES)
    check(n.input_tokens > 0, f"input_tokens = {n.input_tokens}")
    return f"{n.input_tokens} input tokens"


def check_unrouted(client: Anthropic, _: argparse.Namespace) -> str:
    try:
        client.messages.create(model=UNROUTED_MODEL, max_tokens=16, messages=MESSAGES)
    except anthropic.NotFoundError as e:
        body: Dict[str, Any] = e.body if isinstance(e.body, dict) else {}
        check(body.get("type") == "error", f"body {body}")
        check(body.get("error", {}).get("type") == "not_found_error", f"body {body}")
        return f"NotFoundError: {body['error'].get('message', '')[:60]}"
    raise CheckFailed("an unrouted model was answered")


def check_bad_key(_: Anthropic, a: argparse.Namespace) -> str:
    client = Anthropic(base_url=a.base_url, api_key="sk-nobody-has-this", max_retries=0)
    try:
        client.messages.create(model=a.model, max_tokens=16, messages=MESSAGES)
    except anthropic.AuthenticationError as e:
        body: Dict[str, Any] = e.body if isinstance(e.body, dict) else {}
        check(body.get("error", {}).get("type") == "authentication_error", f"body {body}")
        return "AuthenticationError"
    raise CheckFailed("an unknown key was answered")


def check_rate_limit(client: Anthropic, a: argparse.Namespace) -> str:
    first = client.messages.create(model=a.limited_model, max_tokens=16, messages=MESSAGES)
    report_usage("rate_limit (first)", first.usage)
    try:
        client.messages.create(model=a.limited_model, max_tokens=16, messages=MESSAGES)
    except anthropic.RateLimitError as e:
        body: Dict[str, Any] = e.body if isinstance(e.body, dict) else {}
        check(body.get("error", {}).get("type") == "rate_limit_error", f"body {body}")
        retry = e.response.headers.get("retry-after")
        check(retry is not None and int(retry) >= 1, f"retry-after {retry!r}")
        return f"RateLimitError, retry-after {retry}"
    raise CheckFailed("the second request within the quota's window was answered")


TOOLS = [
    {
        "name": "lookup",
        "description": "Looks something up.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
]
# a 1x1 PNG
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def check_image(client: Anthropic, a: argparse.Namespace) -> str:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is in this picture?"},
    ]
    resp = client.messages.create(
        model=a.model, max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    report_usage("image", resp.usage)
    check(text_of(resp).strip() != "", f"no text: {dump(resp)}")
    return "an image and a question answered"


def check_tool_use(client: Anthropic, a: argparse.Namespace) -> str:
    resp = client.messages.create(
        model=a.model, max_tokens=256, messages=MESSAGES, tools=TOOLS, tool_choice={"type": "any"}
    )
    report_usage("tool_use", resp.usage)
    check(resp.stop_reason == "tool_use", f"stop_reason {resp.stop_reason!r}: {dump(resp)}")
    uses = [b for b in resp.content if b.type == "tool_use"]
    check(len(uses) == 1 and uses[0].name == "lookup", f"content {dump(resp)}")
    check(isinstance(uses[0].input, dict), f"input {uses[0].input!r}")
    follow = client.messages.create(
        model=a.model,
        max_tokens=256,
        tools=TOOLS,
        messages=MESSAGES
        + [
            {"role": "assistant", "content": [b.model_dump() for b in resp.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "found it"}],
            },
        ],
    )
    report_usage("tool_result", follow.usage)
    check(text_of(follow).strip() != "", f"no answer after the tool result: {dump(follow)}")
    return f"lookup({json.dumps(uses[0].input)}), then {follow.stop_reason}"


def check_tool_use_stream(client: Anthropic, a: argparse.Namespace) -> str:
    with client.messages.stream(
        model=a.model, max_tokens=256, messages=MESSAGES, tools=TOOLS, tool_choice={"type": "any"}
    ) as s:
        final = s.get_final_message()
    report_usage("tool_use_stream", final.usage)
    uses = [b for b in final.content if b.type == "tool_use"]
    check(final.stop_reason == "tool_use", f"stop_reason {final.stop_reason!r}")
    check(len(uses) == 1 and uses[0].name == "lookup", f"content {dump(final)}")
    check(isinstance(uses[0].input, dict) and uses[0].input, f"input {uses[0].input!r}")
    return f"lookup({json.dumps(uses[0].input)})"


# (only with --tools: the built-in mock calls no tools)
TOOL_CHECKS: Dict[str, Callable[[Anthropic, argparse.Namespace], str]] = {
    "tool_use": check_tool_use,
    "tool_use_stream": check_tool_use_stream,
}

CHECKS: Dict[str, Callable[[Anthropic, argparse.Namespace], str]] = {
    "create": check_create,
    "bearer": check_bearer,
    "stream": check_stream,
    "count_tokens": check_count_tokens,
    "image": check_image,
    "unrouted": check_unrouted,
    "bad_key": check_bad_key,
    "rate_limit": check_rate_limit,
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--limited-model", default="")
    p.add_argument("--checks", default="")
    p.add_argument("--tools", action="store_true", help="also the tool-use checks")
    a = p.parse_args()
    checks = {**CHECKS, **(TOOL_CHECKS if a.tools else {})}
    client = Anthropic(base_url=a.base_url, api_key=a.api_key, max_retries=0, timeout=30)
    failed = 0
    for name in a.checks.split(",") if a.checks else list(checks):
        try:
            print(f"ok   {name}: {checks[name](client, a)}")
        except Exception as e:  # noqa: BLE001 - report every check
            failed += 1
            print(f"FAIL {name}: {e}")
            traceback.print_exc(file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
