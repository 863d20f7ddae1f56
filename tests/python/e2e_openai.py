#!/usr/bin/env python3
"""End-to-end check of the gateway with the official `openai` Python package.

Standalone (no pytest): run against a gateway that is already listening, e.g.

    .venv/bin/python tests/python/e2e_openai.py \
        --base-url http://127.0.0.1:8080/v1 --api-key anything

The gateway must route models "gpt-4o-mini" (chat) and "text-embedding-3-small"
(embeddings) somewhere, and must have no route for "no-such-model".

Prints one line per check and exits 0 only when every check passes; before
it, a `USAGE {json}` line per chat request that reached a model (e2e_common's
`report_usage`), in the order sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Callable, List, Tuple

from e2e_common import CheckFailed, check, dump, report_usage

try:
    import openai
    from openai import OpenAI
except ImportError:  # pragma: no cover - environment problem, not a test failure
    print(
        "e2e_openai: the `openai` package is not installed for this python "
        f"({sys.executable}); run ./scripts/test.sh (creates .venv with the openai package)",
        file=sys.stderr,
    )
    sys.exit(2)

CHAT_MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
UNROUTED_MODEL = "no-such-model"
MESSAGES = [{"role": "user", "content": "Say hello in a few words."}]


# ---------------------------------------------------------------- checks


def check_chat_non_streaming(client: OpenAI) -> str:
    resp = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    report_usage("chat", resp.usage)
    check(resp.object == "chat.completion", f"object is {resp.object!r}, want 'chat.completion'")
    check(bool(resp.id), "response has no id")
    check(len(resp.choices) >= 1, f"no choices: {dump(resp)}")
    content = resp.choices[0].message.content
    check(isinstance(content, str) and content.strip() != "", f"empty answer: {dump(resp)}")
    check(resp.choices[0].message.role == "assistant", f"role is {resp.choices[0].message.role!r}")
    usage = resp.usage
    check(usage is not None, f"no usage object: {dump(resp)}")
    assert usage is not None
    check(usage.prompt_tokens > 0, f"usage.prompt_tokens = {usage.prompt_tokens}, want > 0")
    check(
        usage.completion_tokens > 0,
        f"usage.completion_tokens = {usage.completion_tokens}, want > 0",
    )
    check(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"usage.total_tokens = {usage.total_tokens}, want "
        f"{usage.prompt_tokens} + {usage.completion_tokens}",
    )
    return f"{len(content)} chars, usage {usage.prompt_tokens}+{usage.completion_tokens}={usage.total_tokens}"


def check_chat_streaming(client: OpenAI) -> str:
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    text_parts: List[str] = []
    content_chunks = 0
    finish_reasons: List[str] = []
    chunks = 0
    for chunk in stream:
        chunks += 1
        check(
            chunk.object == "chat.completion.chunk",
            f"chunk {chunks}: object is {chunk.object!r}, want 'chat.completion.chunk'",
        )
        # Without stream_options.include_usage there must be no usage-only chunk
        # and no usage object on any chunk.
        check(
            chunk.usage is None,
            f"chunk {chunks} carries usage although include_usage was not asked: {dump(chunk)}",
        )
        check(
            len(chunk.choices) >= 1,
            f"chunk {chunks} has no choices although include_usage was not asked: {dump(chunk)}",
        )
        for choice in chunk.choices:
            if choice.delta is not None and choice.delta.content:
                text_parts.append(choice.delta.content)
                content_chunks += 1
            if choice.finish_reason is not None:
                finish_reasons.append(choice.finish_reason)
    report_usage("stream", None)
    text = "".join(text_parts)
    check(chunks > 0, "stream yielded no chunks")
    check(text.strip() != "", f"streamed text is empty ({chunks} chunks)")
    check(content_chunks >= 2, f"only {content_chunks} content chunk(s) arrived, want >= 2")
    check(
        finish_reasons[-1:] == ["stop"],
        f"finish_reasons seen = {finish_reasons}, want the last to be 'stop'",
    )
    return f"{chunks} chunks, {content_chunks} with content, {len(text)} chars, finish_reason=stop"


def check_chat_streaming_include_usage(client: OpenAI) -> str:
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    report_usage("stream (include_usage)", chunks[-1].usage if chunks else None)
    check(len(chunks) >= 2, f"only {len(chunks)} chunk(s)")
    last = chunks[-1]
    check(last.usage is not None, f"last chunk has no usage: {dump(last)}")
    check(last.choices == [], f"last (usage) chunk has choices: {dump(last)}")
    usage = last.usage
    assert usage is not None
    check(usage.prompt_tokens > 0, f"usage.prompt_tokens = {usage.prompt_tokens}, want > 0")
    check(
        usage.completion_tokens > 0,
        f"usage.completion_tokens = {usage.completion_tokens}, want > 0",
    )
    check(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"usage.total_tokens = {usage.total_tokens}, want "
        f"{usage.prompt_tokens} + {usage.completion_tokens}",
    )
    text = "".join(
        c.delta.content or "" for ch in chunks for c in ch.choices if c.delta is not None
    )
    check(text.strip() != "", "streamed text is empty")
    return f"{len(chunks)} chunks, final usage {usage.prompt_tokens}+{usage.completion_tokens}={usage.total_tokens}"


def check_embeddings(client: OpenAI) -> str:
    resp = client.embeddings.create(model=EMBED_MODEL, input=["a", "b"])
    check(len(resp.data) == 2, f"{len(resp.data)} embeddings, want 2")
    a, b = resp.data[0].embedding, resp.data[1].embedding
    check(len(a) > 0, "first vector is empty")
    check(len(a) == len(b), f"vector lengths differ: {len(a)} vs {len(b)}")
    check(
        all(isinstance(x, float) for x in a + b),
        "vectors hold non-float values",
    )
    check(
        sorted(d.index for d in resp.data) == [0, 1],
        f"indexes are {[d.index for d in resp.data]}, want [0, 1]",
    )
    check(resp.usage is not None, "no usage object")
    check(resp.usage.prompt_tokens > 0, f"usage.prompt_tokens = {resp.usage.prompt_tokens}, want > 0")
    # The SDK asks for encoding_format=base64 by default (and decodes it); an
    # explicit "float" must come back as plain JSON float arrays.
    resp_f = client.embeddings.create(model=EMBED_MODEL, input=["a", "b"], encoding_format="float")
    check(len(resp_f.data) == 2, f"encoding_format=float: {len(resp_f.data)} embeddings, want 2")
    for d in resp_f.data:
        check(
            isinstance(d.embedding, list) and len(d.embedding) == len(a),
            f"encoding_format=float: embedding is {type(d.embedding).__name__} "
            f"of length {len(d.embedding)}, want a list of {len(a)} floats",
        )
    return f"2 vectors of length {len(a)}, prompt_tokens {resp.usage.prompt_tokens}"


def check_models_list(client: OpenAI) -> str:
    page = client.models.list()
    models = list(page)
    check(len(models) >= 1, "models.list() returned no model")
    for m in models:
        check(bool(m.id), f"model without id: {dump(m)}")
        check(m.object == "model", f"model object is {m.object!r}, want 'model': {dump(m)}")
    return f"{len(models)} model(s): {', '.join(m.id for m in models[:5])}"


def _assert_error_shape(err: "openai.APIStatusError") -> dict:
    """The gateway answers errors with {"error": {"message": ..., "type": ..., ...}}."""
    try:
        raw = err.response.json()
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"error response is not JSON: {err.response.text[:300]!r} ({exc})")
    check(isinstance(raw, dict) and isinstance(raw.get("error"), dict), f"body is not {{'error': {{...}}}}: {raw}")
    inner = raw["error"]
    check(isinstance(inner.get("message"), str) and inner["message"] != "", f"error.message missing: {raw}")
    check(isinstance(inner.get("type"), str) and inner["type"] != "", f"error.type missing: {raw}")
    # The SDK unwraps "error" into .body and lifts code/type onto the exception.
    check(isinstance(err.body, dict), f"SDK .body is {type(err.body).__name__}, want dict")
    check(err.body.get("message") == inner["message"], f"SDK .body does not match the error object: {err.body}")
    check(err.type == inner["type"], f"SDK .type = {err.type!r}, body type = {inner['type']!r}")
    check(inner["message"] in str(err), f"exception message does not carry the gateway message: {err}")
    return inner


def check_error_unrouted_model(client: OpenAI) -> str:
    try:
        client.chat.completions.create(model=UNROUTED_MODEL, messages=MESSAGES)
    except openai.NotFoundError as err:
        inner = _assert_error_shape(err)
        check(err.status_code == 404, f"status {err.status_code}, want 404")
        check(
            inner.get("type") == "invalid_request_error",
            f"error.type = {inner.get('type')!r}, want 'invalid_request_error'",
        )
        check(inner.get("code") == "no_route", f"error.code = {inner.get('code')!r}, want 'no_route'")
        check(err.code == "no_route", f"SDK .code = {err.code!r}, want 'no_route'")
        return f"404 NotFoundError, code={inner.get('code')}"
    except openai.APIStatusError as err:
        raise CheckFailed(
            f"got {type(err).__name__} (status {err.status_code}), want NotFoundError (404): "
            f"{err.response.text[:300]!r}"
        )
    raise CheckFailed(f"request for model {UNROUTED_MODEL!r} succeeded, want 404")


def check_error_missing_model(client: OpenAI) -> str:
    # The SDK requires `model`, so send the raw body through its low-level post.
    try:
        client.post(
            "/chat/completions",
            body={"messages": MESSAGES},
            cast_to=object,
        )
    except openai.BadRequestError as err:
        inner = _assert_error_shape(err)
        check(err.status_code == 400, f"status {err.status_code}, want 400")
        check(
            inner.get("type") == "invalid_request_error",
            f"error.type = {inner.get('type')!r}, want 'invalid_request_error'",
        )
        check(inner.get("code") == "missing_model", f"error.code = {inner.get('code')!r}, want 'missing_model'")
        check(err.code == "missing_model", f"SDK .code = {err.code!r}, want 'missing_model'")
        return f"400 BadRequestError, code={inner.get('code')}"
    except openai.APIStatusError as err:
        raise CheckFailed(
            f"got {type(err).__name__} (status {err.status_code}), want BadRequestError (400): "
            f"{err.response.text[:300]!r}"
        )
    raise CheckFailed("request without a model succeeded, want 400 missing_model")


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Looks something up.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def check_tool_calls(client: OpenAI) -> str:
    resp = client.chat.completions.create(
        model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    report_usage("tool call", resp.usage)
    choice = resp.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason!r}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"tool_calls: {dump(resp)}")
    check(calls[0].function.name == "lookup", f"tool name {calls[0].function.name!r}")
    args = json.loads(calls[0].function.arguments)
    check(isinstance(args, dict), f"arguments {calls[0].function.arguments!r}")
    # the tool's result goes back as a `tool` message, answered with text
    follow = client.chat.completions.create(
        model=CHAT_MODEL,
        tools=TOOLS,
        messages=MESSAGES
        + [
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "found it"},
        ],
    )
    report_usage("tool result", follow.usage)
    check((follow.choices[0].message.content or "").strip() != "", f"no answer: {dump(follow)}")
    return f"{calls[0].function.name}({calls[0].function.arguments}), then {follow.choices[0].finish_reason}"


def check_tool_calls_streaming(client: OpenAI) -> str:
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
    )
    name, args, finish, usage = "", "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                name += (tc.function.name or "") if tc.function else ""
                args += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    report_usage("tool call (streaming)", usage)
    check(usage is not None, "no usage chunk although include_usage was asked")
    check(name == "lookup", f"streamed tool name {name!r}")
    check(isinstance(json.loads(args), dict), f"streamed arguments {args!r}")
    check(finish == "tool_calls", f"finish_reason {finish!r}")
    return f"{name}({args})"


# (only with --tools: the OpenAI mock answers no tool calls)
TOOL_CHECKS: List[Tuple[str, Callable[[OpenAI], str]]] = [
    ("tool calls", check_tool_calls),
    ("tool calls (streaming)", check_tool_calls_streaming),
]

CHECKS: List[Tuple[str, Callable[[OpenAI], str]]] = [
    ("chat completion (non-streaming)", check_chat_non_streaming),
    ("chat completion (streaming)", check_chat_streaming),
    ("chat completion (streaming, include_usage)", check_chat_streaming_include_usage),
    ("embeddings", check_embeddings),
    ("models.list", check_models_list),
    ("error: unrouted model -> NotFoundError", check_error_unrouted_model),
    ("error: missing model -> BadRequestError (400 missing_model)", check_error_missing_model),
]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default="anything")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument("--only", action="append", default=[], help="run only checks whose name contains this")
    parser.add_argument("--tools", action="store_true", help="also the tool-call checks")
    args = parser.parse_args(argv)

    client = OpenAI(
        base_url=args.base_url,
        api_key=args.api_key,
        max_retries=0,
        timeout=args.timeout,
    )
    print(f"e2e_openai: openai {openai.__version__} against {args.base_url}", flush=True)

    checks = CHECKS + (TOOL_CHECKS if args.tools else [])
    selected = [(n, f) for n, f in checks if not args.only or any(o in n for o in args.only)]
    failed: List[str] = []
    for name, fn in selected:
        try:
            detail = fn(client)
            print(f"PASS {name}: {detail}", flush=True)
        except CheckFailed as exc:
            failed.append(name)
            print(f"FAIL {name}: {exc}", flush=True)
        except openai.APIStatusError as exc:
            failed.append(name)
            print(
                f"FAIL {name}: {type(exc).__name__} status {exc.status_code}: {exc.response.text[:500]!r}",
                flush=True,
            )
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)

    ok = len(selected) - len(failed)
    if failed:
        print(f"e2e_openai: FAILED {len(failed)} of {len(selected)} checks: {'; '.join(failed)}", flush=True)
        return 1
    print(f"e2e_openai: all {ok} checks ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
