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
           consumer and key names and metadata carrying markup and script
           shown literally on every page; no script of theirs ran.

After every step: no browser log of level SEVERE and no Content-Security-Policy
report at any level, no navigation or resource answered >= 400, no resource
from an origin other than the console's, `window.__xss` unset -- except the
failures a step provokes on purpose, which must then happen.

Prints `STEP ...` lines as it goes; exits 0 when every check passed, 1 with
`FAILED: ...` otherwise. Talks to 127.0.0.1 only (no proxy).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional

import openai

# ---------------------------------------------------------------- selectors
# Everything the script looks for in the console, by what a person sees:
# label texts, button texts, headings, roles, page links. The console is
# being reworked: when its wording changes, change it here and nowhere else.
# Label matches are case-insensitive prefixes ("Quotas" matches
# "Quotas (JSON list, ...)").

SIGN_IN_FIELD = "Admin token"  # the sign-in page's token field
SIGN_IN_BUTTON = "Sign in"
PAGE_LINKS = "//nav//a[starts-with(@href, '#')]"  # one per page (hash route)
TENANTS_PAGE = "Tenants"  # link texts of the pages a step uses
USAGE_PAGE = "Usage and budgets"
REQUESTS_PAGE = "Live requests"
CREATE_TENANT = "Create tenant"  # the button of the new-tenant form
CREATE_CONSUMER = "Create consumer"  # ... of a tenant's new-consumer form
NAME_FIELD = {"tenant": "tenant name", "consumer": "consumer name"}
MODELS_FIELD = "Allowed models"
QUOTAS_FIELD = "Quotas"  # the JSON list of quotas
METADATA_FIELD = "Metadata"  # the JSON object
SAVED = "Saved"  # a save's success message (with the name)
KEY_NAME_FIELD = "New key name"
CREATE_KEY = "Create key"
KEY_CREATED = "Key created"  # the success message of a new key
KEY_PATTERN = re.compile(r"sk-gw-[A-Za-z0-9]{20,}")  # the plaintext on the page
COPY_BUTTON = "Copy"
COPIED = "Copied"  # the copy button's success message
REVOKE_BUTTON = "Revoke"
REVOKED = "Revoked"  # the revoke's success message (with the prefix)
LOADING = "Loading"  # shown while a page waits for its data


def lit(s: str) -> str:
    """`s` as an XPath 1.0 string literal (concat() when it has both quotes)."""
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    parts = s.split("'")
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in parts) + ")"


_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


def _starts_ci(text: str) -> str:
    return f"starts-with(translate(normalize-space(), '{_UPPER}', '{_LOWER}'), {lit(text.lower())})"


def x_button(text: str) -> str:
    return f"//button[normalize-space()={lit(text)}]"


def x_page_link(title: str) -> str:
    return f"//nav//a[normalize-space()={lit(title)}]"


def x_form_with_button(text: str) -> str:
    """The form a button of this text submits."""
    return f"//form[.//button[normalize-space()={lit(text)}]]"


def x_field(label: str) -> str:
    """The input, textarea or select a label starting with `label` names (the
    control inside the label, or the one its `for` points at); relative, for a
    search within a form, and absolute."""
    lab = f"label[{_starts_ci(label)}]"
    ctl = "*[self::input or self::textarea or self::select]"
    return f".//{lab}//{ctl} | .//{ctl}[@id and @id = //{lab}/@for]"


def x_message(*texts: str) -> str:
    """A status or alert line containing every one of `texts`."""
    cond = " and ".join(f"contains(., {lit(t)})" for t in texts)
    return f"//*[(@role='status' or @role='alert') and {cond}]"


def x_row(*texts: str) -> str:
    """A table row or list item containing every one of `texts`."""
    cond = " and ".join(f"contains(., {lit(t)})" for t in texts)
    return f"//*[(self::tr or self::li) and {cond}]"


X_METER = ".//*[@role='meter']"

# ---------------------------------------------------------------- WebDriver


class CheckFailed(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


class WebDriverError(Exception):
    def __init__(self, error: str, message: str):
        super().__init__(f"{error}: {message}")
        self.error = error


# talk to loopback directly, whatever proxy the environment names
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriver:
    """A W3C WebDriver session (what this script needs of it)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.session: Optional[str] = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None
        if method == "POST":
            data = json.dumps({} if body is None else body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json; charset=utf-8"},
        )
        try:
            with _OPENER.open(req, timeout=60) as resp:
                payload = json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                v = json.loads(raw)["value"]
                raise WebDriverError(v.get("error", str(e.code)), v.get("message", "")[:400]) from None
            except (ValueError, KeyError, TypeError):
                raise WebDriverError(str(e.code), raw[:400].decode(errors="replace")) from None
        return payload.get("value") if isinstance(payload, dict) else payload

    def _s(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def start(self, chromium: str, profile: str) -> None:
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            f"--user-data-dir={profile}",
        ]
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            # a confirm() nobody handles fails the next command instead of
            # being dismissed silently
            "unhandledPromptBehavior": "ignore",
        }
        v = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = v["sessionId"]

    def quit(self) -> None:
        if self.session:
            try:
                self._s("DELETE", "")
            finally:
                self.session = None

    def navigate(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def find_all(self, xpath: str, within: Optional[str] = None) -> list[str]:
        path = f"/element/{within}/elements" if within else "/elements"
        return [e[ELEMENT] for e in self._s("POST", path, {"using": "xpath", "value": xpath})]

    def click(self, el: str) -> None:
        self._s("POST", f"/element/{el}/click")

    def clear(self, el: str) -> None:
        self._s("POST", f"/element/{el}/clear")

    def type(self, el: str, text: str) -> None:
        self._s("POST", f"/element/{el}/value", {"text": text})

    def text(self, el: str) -> str:
        return self._s("GET", f"/element/{el}/text")

    def attribute(self, el: str, name: str) -> Optional[str]:
        return self._s("GET", f"/element/{el}/attribute/{name}")

    def displayed(self, el: str) -> bool:
        return bool(self._s("GET", f"/element/{el}/displayed"))

    def js(self, script: str, *args: Any) -> Any:
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args: Any) -> Any:
        return self._s("POST", "/execute/async", {"script": script, "args": list(args)})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._s("GET", "/screenshot"))

    def set_window(self, width: int, height: int) -> None:
        self._s("POST", "/window/rect", {"width": width, "height": height})

    def browser_log(self) -> list[dict]:
        """The browser's console and network log since the last call."""
        return self._s("POST", "/se/log", {"type": "browser"})

    def alert_text(self) -> Optional[str]:
        try:
            return self._s("GET", "/alert/text")
        except WebDriverError as e:
            if e.error == "no such alert":
                return None
            raise

    def accept_alert(self) -> None:
        self._s("POST", "/alert/accept")

    def grant(self, permission: str) -> None:
        self._s("POST", "/permissions", {"descriptor": {"name": permission}, "state": "granted"})


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Polls `probe` until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Optional[Exception] = None
    while True:
        try:
            v = probe()
            if v:
                return v
        except (WebDriverError, CheckFailed) as e:
            last_error = e
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout} s waiting for {what}" + (f" (last: {last_error})" if last_error else ""))
        time.sleep(0.05)


# ---------------------------------------------------------------- the checks


class Expected:
    """A failure a step provokes on purpose: a request whose URL contains
    `url_part` answered with one of `statuses`; it must happen."""

    def __init__(self, url_part: str, statuses: tuple[int, ...]):
        self.url_part = url_part
        self.statuses = statuses
        self.seen = False

    def matches_log(self, message: str) -> bool:
        return self.url_part in message and any(f"status of {s} " in message for s in self.statuses)

    def matches_entry(self, name: str, status: int) -> bool:
        return self.url_part in name and status in self.statuses

    def __repr__(self) -> str:
        return f"{self.url_part} answered {'/'.join(map(str, self.statuses))}"


# Every navigation and resource entry of the document (and the document's own
# origin): what the checks read; the buffer made big enough to keep them all.
ENTRIES_JS = """
performance.setResourceTimingBufferSize(100000);
const all = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));
return {doc: String(performance.timeOrigin), origin: location.origin,
        entries: all.map((e) => {
          let origin = 'null';
          try { origin = new URL(e.name).origin; } catch (err) {}
          return {name: e.name, type: e.initiatorType || e.entryType, status: e.responseStatus || 0, origin};
        })};
"""

# Markup and script that ran where it must not have: injected elements or
# handlers in the document, or the flag the hostile values set.
# Markup from data that became elements or attributes: event handlers,
# javascript: URLs, URLs or documents carrying the hostile values' marker,
# inline scripts, frames; and the flag the hostile values set when they run.
INJECTED_JS = """
const bad = [];
if (window.__xss !== undefined) bad.push('window.__xss = ' + String(window.__xss));
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    if (/^on/i.test(a.name)) bad.push(`<${el.localName} ${a.name}=...>`);
    if (/^\\s*javascript:/i.test(a.value)) bad.push(`<${el.localName} ${a.name}="javascript:...">`);
    if (['src', 'href', 'srcdoc', 'action', 'data'].includes(a.name) && a.value.includes('__xss'))
      bad.push(`<${el.localName} ${a.name}=...__xss...>`);
  }
  if (['iframe', 'frame', 'object', 'embed'].includes(el.localName)) bad.push(`<${el.localName}>`);
  if (el.localName === 'script' && !el.src) bad.push('<script> without src');
}
return bad;
"""


class Console:
    """The console in one browser session, with the checks every step ends
    with."""

    def __init__(self, wd: WebDriver, url: str, artifacts: Optional[str]):
        self.wd = wd
        self.url = url
        self.artifacts = artifacts
        self.doc = None  # performance.timeOrigin of the document checked so far
        self.checked = 0  # how many of its entries were checked
        self.origin = None
        self.requests_checked = 0  # navigation and resource entries checked
        self.too_wide: list[str] = []  # pages that scroll sideways when shot

    # -- the checks

    def check_clean(self, step: str, expected: tuple[Expected, ...] = ()) -> None:
        problems = []
        for entry in self.wd.browser_log():
            level, msg = entry.get("level", ""), entry.get("message", "")
            print(f"BROWSER {level} {msg}", flush=True)
            csp = "Content Security Policy" in msg or "Content-Security-Policy" in msg
            if level == "SEVERE" or (csp and level != "INFO"):
                hit = next((e for e in expected if e.matches_log(msg)), None)
                if hit is not None and not csp:
                    hit.seen = True
                else:
                    problems.append(f"browser log {level}: {msg}")
        got = self.wd.js(ENTRIES_JS)
        if got["doc"] != self.doc:
            self.doc, self.checked = got["doc"], 0
        self.origin = got["origin"]
        for e in got["entries"][self.checked :]:
            if e["origin"] != got["origin"]:
                problems.append(f"a request left for another origin: {e['type']} {e['name']} (the console is {got['origin']})")
            if e["status"] >= 400:
                hit = next((x for x in expected if x.matches_entry(e["name"], e["status"])), None)
                if hit is not None:
                    hit.seen = True
                else:
                    problems.append(f"failed request: {e['type']} {e['name']} answered {e['status']}")
        self.requests_checked += len(got["entries"]) - self.checked
        self.checked = len(got["entries"])
        injected = self.wd.js(INJECTED_JS)
        if injected:
            problems.append("markup or script from data ran or was inserted: " + "; ".join(sorted(set(injected))[:10]))
        for e in expected:
            if not e.seen:
                problems.append(f"the step should have provoked a failed request ({e}) and did not")
        check(not problems, f"after '{step}':\n  " + "\n  ".join(problems))

    def step(self, name: str, fn: Callable[[], Any], expected: tuple[Expected, ...] = ()) -> Any:
        t = time.monotonic()
        print(f"STEP {name}", flush=True)
        v = fn()
        self.check_clean(name, expected)
        print(f"  ok ({time.monotonic() - t:.2f} s)", flush=True)
        return v

    # -- finding and doing, by what is visible

    def find(self, xpath: str, within: Optional[str] = None, timeout: float = 10.0) -> str:
        """The first displayed element `xpath` matches (waits for it)."""

        def probe() -> Optional[str]:
            for el in self.wd.find_all(xpath, within):
                if self.wd.displayed(el):
                    return el
            return None

        return wait_for(f"an element {xpath}", probe, timeout)

    def absent(self, xpath: str) -> bool:
        return not any(self.wd.displayed(el) for el in self.wd.find_all(xpath))

    def click(self, xpath: str, within: Optional[str] = None) -> None:
        def attempt() -> bool:
            # (found again on each try: a re-render may replace the element or
            # cover it a moment)
            self.wd.click(self.find(xpath, within))
            return True

        wait_for(f"a click on {xpath}", attempt, 10)

    def fill(self, form: str, label: str, text: str) -> None:
        el = self.find(x_field(label), within=form)
        self.wd.clear(el)
        self.wd.type(el, text)
        check(
            self.wd.js("return arguments[0].value", {ELEMENT: el}) == text,
            f"the field '{label}' holds {self.wd.js('return arguments[0].value', {ELEMENT: el})!r}, not {text!r}",
        )

    def body_text(self) -> str:
        return self.wd.js("return document.body.innerText")

    def settled(self) -> None:
        """Waits until the page has a heading, shows no 'Loading' and its text
        stayed the same for 0.3 s."""
        last = {"text": None, "since": time.monotonic()}

        def probe() -> bool:
            text = self.body_text()
            now = time.monotonic()
            if text != last["text"]:
                last["text"], last["since"] = text, now
                return False
            has_heading = bool(self.wd.find_all("//h1 | //h2"))
            return has_heading and LOADING not in text and now - last["since"] >= 0.3

        wait_for("the page to settle", probe, 10)

    def open_page(self, title: str) -> None:
        """Opens the page `title` from the navigation, afresh (through another
        page when it is the current one), and waits for it to settle."""
        if self.is_current(title):
            other = next(t for _, t in self.page_links() if t != title)
            self.click(x_page_link(other))
            wait_for(f"the page {other} to be current", lambda: self.is_current(other), 5)
        self.click(x_page_link(title))
        wait_for(f"the page {title} to be current", lambda: self.is_current(title), 5)
        self.settled()

    def is_current(self, title: str) -> bool:
        link = self.find(x_page_link(title))
        return self.wd.attribute(link, "aria-current") == "page"

    def page_links(self) -> list[tuple[str, str]]:
        """(route, link text) of every page the navigation offers."""
        links = [(self.wd.attribute(el, "href"), self.wd.text(el)) for el in self.wd.find_all(PAGE_LINKS)]
        return [(href.split("#", 1)[1], text) for href, text in links if href and "#" in href]

    def sign_in(self, token: str) -> None:
        field = self.find(x_field(SIGN_IN_FIELD))
        self.wd.clear(field)
        self.wd.type(field, token)
        self.click(x_button(SIGN_IN_BUTTON))

    def screenshot(self, name: str) -> None:
        """`<artifacts>/<name>-1280.png` and `-390.png`: the whole page at a
        1280 px and a 390 px wide viewport."""
        if not self.artifacts:
            return
        for width in (1280, 390):
            self.viewport(width, 900)
            self.settled()
            # (wide tables scroll in their own box; the page itself must not)
            wide = self.wd.js("return document.documentElement.scrollWidth")
            if wide > width:
                self.too_wide.append(f"{name} is {wide} px wide in a {width} px viewport")
            height = self.wd.js("return document.documentElement.scrollHeight")
            self.viewport(width, max(600, min(int(height), 6000)))
            path = os.path.join(self.artifacts, f"{name}-{width}.png")
            with open(path, "wb") as f:
                f.write(self.wd.screenshot())
            print(f"SCREENSHOT {path}", flush=True)
        self.viewport(1280, 900)

    def viewport(self, width: int, height: int) -> None:
        """Sets the viewport (not the window) to width x height."""
        self.wd.set_window(width, height)
        inner = self.wd.js("return [innerWidth, innerHeight]")
        if inner != [width, height]:
            self.wd.set_window(width + (width - inner[0]), height + (height - inner[1]))
            inner = self.wd.js("return [innerWidth, innerHeight]")
        check(inner[0] == width, f"the viewport is {inner[0]} px wide, not {width}")

    # -- tenants, consumers and keys

    def save_entity(self, what: str, name: str, quotas: str, metadata: str) -> None:
        """Fills and submits the new-tenant or new-consumer form."""
        form = self.find(x_form_with_button(CREATE_TENANT if what == "tenant" else CREATE_CONSUMER))
        self.fill(form, NAME_FIELD[what], name)
        self.fill(form, MODELS_FIELD, "*")
        self.fill(form, QUOTAS_FIELD, quotas)
        self.fill(form, METADATA_FIELD, metadata)
        self.click(x_button(CREATE_TENANT if what == "tenant" else CREATE_CONSUMER))
        self.find(x_message(SAVED, name))

    def open_consumer(self, tenant: str, consumer: str) -> None:
        """The tenants page with `tenant` and its `consumer` opened (their keys
        shown)."""
        self.open_page(TENANTS_PAGE)
        self.click(x_button(tenant))
        self.click(x_button(consumer))
        self.find(x_button(CREATE_KEY))
        self.settled()


# ---------------------------------------------------------------- scenarios


def sdk(args: argparse.Namespace, key: str) -> "openai.OpenAI":
    return openai.OpenAI(base_url=args.gateway, api_key=key, max_retries=0, timeout=10)


# (the quota reserves max_tokens up front: the default 4096 never fits in 1000)
MAX_TOKENS = 50


def keys_scenario(c: Console, args: argparse.Namespace) -> None:
    tenant, consumer, key_name = "acme-console", "app-one", "ci key"
    quota = json.dumps([{"name": "tpm", "by": "consumer", "strategy": "total_tokens", "limit": 1000, "window": "1m"}])

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

    c.step("a wrong admin token shows an error", wrong_token, (Expected("/admin/health", (401,)),))

    def right_token() -> None:
        c.sign_in(args.admin_token)
        c.find(PAGE_LINKS)
        c.settled()

    c.step("sign in", right_token)

    def create_tenant() -> None:
        c.open_page(TENANTS_PAGE)
        c.save_entity("tenant", tenant, "[]", json.dumps({"team": "platform"}))
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


def shown_literally(text: str, value: str) -> bool:
    """`value` in the page text as written, or as a JSON string shows it."""
    return value in text or json.dumps(value)[1:-1] in text


def hostile_scenario(c: Console, args: argparse.Namespace) -> None:
    tenant, consumer = "xss-tenant", "xss-consumer"
    metadata = json.dumps({f"v{i}": v for i, v in enumerate(HOSTILE)})

    def sign_in() -> None:
        c.wd.navigate(c.url)
        c.sign_in(args.admin_token)
        c.find(PAGE_LINKS)
        c.settled()

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
        c.save_entity("tenant", tenant, "[]", metadata)
        c.click(x_button(tenant))
        c.save_entity("consumer", consumer, "[]", metadata)
        c.click(x_button(consumer))
        form = c.find(x_form_with_button(CREATE_KEY))
        c.fill(form, KEY_NAME_FIELD, HOSTILE_KEY_NAME)
        c.click(x_button(CREATE_KEY))
        c.find(x_message(KEY_CREATED))

    c.step("a tenant, a consumer and a key named and described with markup", create)

    def literal(where: str, values: list[str]) -> None:
        text = c.body_text()
        for v in values:
            check(shown_literally(text, v), f"{where}: {v!r} is not shown as text")

    def tenants_list() -> None:
        c.open_page(TENANTS_PAGE)
        literal("the tenants list", HOSTILE)

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
