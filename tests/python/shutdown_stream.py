#!/usr/bin/env python3
"""Streams one chat completion with the official `openai` package and reports how
the stream ended; used by tests/tests/shutdown.rs, which cuts the stream by
stopping the gateway while it runs.

    .venv/bin/python tests/python/shutdown_stream.py --base-url http://127.0.0.1:8080/v1

Prints `first-chunk` (flushed) once the first content chunk arrived, then exactly
one final line:

* `api-error <exception type> <json of the error body>` and exit 0 when the SDK
  raised `openai.APIError` (for an error event in the stream the type is
  `APIError` and the body the event's `error`; a dropped connection would be an
  `APIConnectionError` without a body),
* `clean-end <n> chunks` and exit 3 when the stream ended as if complete,
* `other-error <type>: <message>` and exit 4 for any other exception.
"""

from __future__ import annotations

import argparse
import json
import sys

try:
    import openai
    from openai import OpenAI
except ImportError:  # pragma: no cover - environment problem, not a test failure
    print(
        "shutdown_stream: the `openai` package is not installed for this python "
        f"({sys.executable}); run ./scripts/test.sh",
        file=sys.stderr,
    )
    sys.exit(2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", default="anything")
    ap.add_argument("--model", default="gpt-4o-mini")
    args = ap.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    chunks = 0
    try:
        stream = client.chat.completions.create(
            model=args.model,
            messages=[{"role": "user", "content": "a long answer, please"}],
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
                if chunks == 1:
                    print("first-chunk", flush=True)
    except openai.APIError as e:
        print(f"api-error {type(e).__name__} {json.dumps(e.body)}", flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(f"other-error {type(e).__name__}: {e}", flush=True)
        return 4
    print(f"clean-end {chunks} chunks", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
