"""The operator console (`/ui/` on the admin listener) in Debian's headless
Chromium, driven over W3C WebDriver (chromedriver) with the standard library
only, and the official `openai` SDK using the key the console made. Started by
tests/tests/console_browser.rs:

  console_e2e.py keys|hostile --webdriver URL --chromium PATH --profile DIR
      --console URL --gateway URL --admin-token TOKEN --model MODEL
      [--artifacts DIR]

Scenarios:
  keys     a wrong admin token shows a readable error; sign in; a tenant, a
           consumer with a token quota and a key made in the console; the key
           copied (the clipboard read back); the SDK answered with it; the
           request in Live requests; the consumer's usage bar moved; the key
           revoked (the confirmation accepted) and the SDK refused (401) within
           a second of the console saying so; a screenshot of every page at
           1280 and 390 px into --artifacts.
  hostile  a tenant name with markup refused with a readable error; tenant,
           consumer and key names, metadata, an allowed-model glob and a
           client's model name (in Live requests) carrying markup and script
           shown literally on every page; no script of theirs ran.

After every step: no browser log of level SEVERE and no Content-Security-Policy
report at any level, no navigation or resource answered >= 400, no resource
from an origin other than the console's, `window.__xss` unset -- except the
failures a step provokes on purpose, which must then happen.

Prints `STEP ...` lines as it goes; exits 0 when every check passed, 1 with
`FAILED: ...` otherwise. Talks to 127.0.0.1 only (no proxy). The selectors and
the checks are in console_ui.py, the WebDriver client in webdriver.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import openai

from console_ui import (
    COPIED,
    COPY_BUTTON,
    CREATE_KEY,
    CREATE_TENANT,
    ELEMENT,
    KEY_CREATED,
    KEY_NAME_FIELD,
    KEY_PATTERN,
    NAME_FIELD,
    REQUESTS_PAGE,
    REVOKE_BUTTON,
    REVOKED,
    SAVED,
    SIGN_IN_FIELD,
    TENANTS_PAGE,
    USAGE_PAGE,
    X_METER,
    Console,
    Expected,
    x_button,
    x_field,
    x_form_with_button,
    x_message,
    x_row,
)
from webdriver import CheckFailed, WebDriver, WebDriverError, check, wait_for


# ---------------------------------------------------------------- scenarios


def sdk(args: argparse.Namespace, key: str) -> "openai.OpenAI":
    return openai.OpenAI(base_url=args.gateway, api_key=key, max_retries=0, timeout=10)


# (the quota reserves max_tokens up front: the default 4096 never fits in 1000)
MAX_TOKENS = 50


def keys_scenario(c: Console, args: argparse.Namespace) -> None:
    tenant, consumer, key_name = "acme-console", "app-one", "ci key"
    quota = [{"name": "tpm", "by": "consumer", "strategy": "total_tokens", "limit": 1000, "window": "1m"}]

    def open_console() -> None:
        c.wd.navigate(c.url)
        c.find(x_field(SIGN_IN_FIELD))
        c.settled()
        c.screenshot("signin")

    c.step("open the console: the sign-in page", open_console)

    def wrong_token() -> None:
        c.sign_in("not-" + args.admin_token)
        alert = c.find("//*[@role='alert']")
        text = c.wd.text(alert).strip()
        check(len(text) > 10, f"the wrong token's error is {text!r}")
        check(c.body_text().strip() != "", "a blank page after a wrong token")
        print(f"  error shown: {text!r}", flush=True)
        c.screenshot("signin-error")

    c.step("a wrong admin token shows an error", wrong_token, (Expected("/admin/", (401,)),))

    c.step("sign in", lambda: c.signed_in(args.admin_token))

    def create_tenant() -> None:
        c.open_page(TENANTS_PAGE)
        c.save_entity("tenant", tenant, [], json.dumps({"team": "platform"}))
        c.find(x_button(tenant))

    c.step("create a tenant", create_tenant)

    def create_consumer() -> None:
        c.click(x_button(tenant))
        c.save_entity("consumer", consumer, quota, "{}")
        c.find(x_button(consumer))

    c.step("create a consumer with a token quota of 1000 per minute", create_consumer)

    def usage_before() -> None:
        c.open_page(USAGE_PAGE)
        for row in c.wd.find_all(x_row(consumer)):
            for meter in c.wd.find_all(X_METER, row):
                check(float(c.wd.attribute(meter, "aria-valuenow") or 0) == 0, "usage before any request")

    c.step("the usage page before any request", usage_before)

    def create_key() -> tuple[str, str]:
        c.open_consumer(tenant, consumer)
        form = c.find(x_form_with_button(CREATE_KEY))
        c.fill(form, KEY_NAME_FIELD, key_name)
        c.click(x_button(CREATE_KEY))
        c.find(x_message(KEY_CREATED))
        keys = wait_for("the new key's plaintext on the page", lambda: KEY_PATTERN.findall(c.body_text()))
        check(len(set(keys)) == 1, f"one plaintext key on the page, not {len(set(keys))}")
        key = keys[0]
        c.wd.grant("clipboard-write")
        c.wd.grant("clipboard-read")
        c.click(x_button(COPY_BUTTON))
        c.find(x_message(COPIED))
        copied = c.wd.js_async(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (e) => done('clipboard: ' + e));"
        )
        check(copied == key, f"the clipboard holds {copied[:12]!r}..., not the key shown")
        return copied, key[len("sk-gw-") : len("sk-gw-") + 8]

    key, prefix = c.step("create a key and copy it", create_key)

    def call_sdk() -> None:
        answer = sdk(args, key).chat.completions.create(
            model=args.model,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": "hello from the console test"}],
        )
        check(bool(answer.choices) and bool(answer.choices[0].message.content), f"an empty answer: {answer}")
        check(answer.usage is not None and answer.usage.total_tokens > 0, f"no usage: {answer.usage}")
        print(f"  the SDK got an answer, {answer.usage.total_tokens} tokens", flush=True)

    c.step("the openai SDK with the copied key", call_sdk)

    def live_requests() -> None:
        c.open_page(REQUESTS_PAGE)
        row = c.find(x_row(tenant, consumer, args.model, "200"))
        print(f"  row: {c.wd.text(row)!r}", flush=True)

    c.step("the request in Live requests", live_requests)

    def usage_after() -> None:
        c.open_page(USAGE_PAGE)
        row = c.find(x_row(consumer, "1000"))
        meter = c.find(X_METER, within=row)
        used = float(c.wd.attribute(meter, "aria-valuenow") or 0)
        limit = float(c.wd.attribute(meter, "aria-valuemax") or 0)
        check(0 < used <= limit == 1000, f"the usage bar shows {used} of {limit}")
        fill = c.wd.js(
            "const m = arguments[0]; const f = m.firstElementChild;"
            "return f ? f.getBoundingClientRect().width : -1;",
            {ELEMENT: meter},
        )
        check(fill != 0, f"the usage bar is empty (its fill is {fill} px wide)")
        print(f"  usage bar: {used:g} of {limit:g}", flush=True)

    c.step("the consumer's usage bar moved", usage_after)

    def revoke() -> None:
        c.open_consumer(tenant, consumer)
        row = c.find(x_row(prefix, key_name))
        c.click("." + x_button(REVOKE_BUTTON), within=row)
        text = wait_for("the confirmation dialog", c.wd.alert_text, 5)
        check(prefix in text, f"the confirmation names the key: {text!r}")
        c.wd.accept_alert()
        c.find(x_message(REVOKED, prefix))
        said = time.monotonic()
        client = sdk(args, key)
        while True:
            try:
                client.chat.completions.create(
                    model=args.model, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "after"}]
                )
            except openai.AuthenticationError as e:
                after = time.monotonic() - said
                check(e.status_code == 401, f"status {e.status_code}")
                print(f"  401 {after * 1000:.0f} ms after the console said revoked", flush=True)
                break
            check(time.monotonic() - said < 1.0, "the revoked key still answered 1 s after the console said so")
            time.sleep(0.05)
        c.find(x_row(prefix, "revoked"))

    c.step("revoke the key: the SDK gets 401 within a second", revoke)

    def screenshots() -> None:
        c.screenshot("tenant-keys")
        for route, title in c.page_links():
            c.open_page(title)
            c.screenshot(route)
        print(f"  pages: {', '.join(r for r, _ in c.page_links())}", flush=True)
        check(not c.too_wide, "pages scroll sideways (a phone shows them cut): " + "; ".join(c.too_wide))

    c.step("a screenshot of every page at 1280 and 390 px", screenshots)


# Values that run script if the console ever renders them as markup. Names of
# tenants and consumers are restricted by the admin API (letters, digits, '.',
# '_', '-'); key names and metadata are free text.
HOSTILE = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "'><svg onload=window.__xss=1>",
    "javascript:window.__xss=1",
    '<a href="javascript:window.__xss=1">link</a>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "${window.__xss=1}{{constructor.constructor('window.__xss=1')()}}",
]
HOSTILE_KEY_NAME = '"><img src=x onerror=window.__xss=1><script>window.__xss=1</script>'
# A model name is the client's to choose (any text without control
# characters) and Live requests shows it; allowed for the tenant as a glob too.
HOSTILE_MODEL = '"><img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


def shown_literally(text: str, value: str) -> bool:
    """`value` in the page text as written, or as a JSON string shows it."""
    return value in text or json.dumps(value)[1:-1] in text


def hostile_scenario(c: Console, args: argparse.Namespace) -> None:
    tenant, consumer = "xss-tenant", "xss-consumer"
    metadata = json.dumps({f"v{i}": v for i, v in enumerate(HOSTILE)})

    def literal(where: str, values: list[str]) -> None:
        text = c.body_text()
        for v in values:
            check(shown_literally(text, v), f"{where}: {v!r} is not shown as text")

    def sign_in() -> None:
        c.wd.navigate(c.url)
        c.signed_in(args.admin_token)

    c.step("sign in", sign_in)

    def refused_name() -> None:
        c.open_page(TENANTS_PAGE)
        form = c.find(x_form_with_button(CREATE_TENANT))
        c.fill(form, NAME_FIELD["tenant"], HOSTILE[0])
        c.click(x_button(CREATE_TENANT))
        msg = c.wd.text(c.find(x_form_with_button(CREATE_TENANT) + "//*[@role='status' or @role='alert']"))
        check(len(msg) > 10 and SAVED not in msg, f"the refusal reads {msg!r}")
        print(f"  refused: {msg!r}", flush=True)
        check(c.absent(x_button(HOSTILE[0])), "the refused tenant is listed")

    c.step(
        "a tenant named with markup is refused with a readable error",
        refused_name,
        (Expected("/admin/tenants/", (400, 404)),),
    )

    def create() -> None:
        c.wd.navigate(c.url + "#overview")  # (a fresh form)
        c.open_page(TENANTS_PAGE)
        c.save_entity("tenant", tenant, [], metadata, models=f"*, {HOSTILE_MODEL}")
        c.click(x_button(tenant))
        c.save_entity("consumer", consumer, [], metadata)
        c.click(x_button(consumer))
        form = c.find(x_form_with_button(CREATE_KEY))
        c.fill(form, KEY_NAME_FIELD, HOSTILE_KEY_NAME)
        c.click(x_button(CREATE_KEY))
        c.find(x_message(KEY_CREATED))
        return wait_for("the new key's plaintext on the page", lambda: KEY_PATTERN.findall(c.body_text()))[0]

    key = c.step("a tenant, a consumer and a key named and described with markup", create)

    def hostile_model() -> None:
        answer = sdk(args, key).chat.completions.create(
            model=HOSTILE_MODEL,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": HOSTILE[0]}],
            extra_query={"q": HOSTILE[1]},
        )
        check(bool(answer.choices), f"no answer: {answer}")
        c.open_page(REQUESTS_PAGE)
        c.find(x_row(tenant, consumer))
        literal("Live requests", [HOSTILE_MODEL])

    c.step("a client's model name with markup is shown as text in Live requests", hostile_model)

    def tenants_list() -> None:
        c.open_page(TENANTS_PAGE)
        literal("the tenants list", HOSTILE + [HOSTILE_MODEL])

    c.step("the tenants list shows the tenant's metadata as text", tenants_list)

    def consumers() -> None:
        c.click(x_button(tenant))
        c.find(x_button(consumer))
        c.settled()
        literal("the tenant's consumers", HOSTILE)

    c.step("the tenant's consumers show their metadata as text", consumers)

    def keys() -> None:
        c.open_consumer(tenant, consumer)
        literal("the consumer's keys", HOSTILE + [HOSTILE_KEY_NAME])
        c.screenshot("hostile-names")

    c.step("the consumer's keys show the key name as text", keys)

    def every_page() -> None:
        for route, title in c.page_links():
            c.open_page(title)
            c.check_clean(f"the page {route}")

    c.step("every other page", every_page)


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["keys", "hostile"])
    p.add_argument("--webdriver", required=True)
    p.add_argument("--chromium", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--console", required=True, help="the console's URL, http://127.0.0.1:PORT/ui/")
    p.add_argument("--gateway", required=True, help="the data plane's base URL for the SDK, .../v1")
    p.add_argument("--admin-token", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--artifacts", help="where screenshots go")
    args = p.parse_args()
    if args.artifacts:
        os.makedirs(args.artifacts, exist_ok=True)
    started = time.monotonic()
    if args.artifacts:
        stale = os.path.join(args.artifacts, f"FAILED-{args.scenario}.png")
        if os.path.exists(stale):
            os.remove(stale)
    wd = WebDriver(args.webdriver)
    wd.start(args.chromium, args.profile)
    c = Console(wd, args.console, args.artifacts)
    try:
        {"keys": keys_scenario, "hostile": hostile_scenario}[args.scenario](c, args)
    except (CheckFailed, WebDriverError, openai.OpenAIError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", flush=True)
        try:
            body = c.body_text()
            print(f"--- the page's text:\n{body[:3000]}", flush=True)
            if args.artifacts:
                path = os.path.join(args.artifacts, f"FAILED-{args.scenario}.png")
                with open(path, "wb") as f:
                    f.write(wd.screenshot())
                print(f"SCREENSHOT {path}", flush=True)
        except Exception as inner:  # noqa: BLE001 - the failure above is what matters
            print(f"(could not read the page: {inner})", flush=True)
        return 1
    finally:
        wd.quit()
    print(
        f"PASSED {args.scenario} in {time.monotonic() - started:.1f} s; "
        f"{c.requests_checked} requests of the console checked, all to {c.origin}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
