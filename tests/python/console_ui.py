"""The console as a person sees it, for tests/python/console_e2e.py: the
selectors (labels, button texts, headings, roles: update them here when the
console's wording changes), a `Console` that finds and does things by them, and
the checks every step ends with (browser log, failed and cross-origin
requests, markup from data)."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Optional

from webdriver import ELEMENT, WebDriver, check, wait_for

# ---------------------------------------------------------------- selectors
# Everything the test looks for in the console, by what a person sees: label
# texts, button texts, headings, roles, page links. When the console's wording
# changes, change it here and nowhere else. Label matches are case-insensitive
# prefixes ("Quotas" matches the legend "Quotas of this consumer").

SIGN_IN_FIELD = "Admin token"  # the sign-in page's token field
SIGN_IN_BUTTON = "Sign in"
PAGE_LINKS = "//nav//a[starts-with(@href, '#')]"  # one per page (hash route)
TENANTS_PAGE = "Tenants"  # link texts of the pages a step uses
USAGE_PAGE = "Usage and budgets"
REQUESTS_PAGE = "Live requests"
CREATE_TENANT = "Create tenant"  # the button of the new-tenant form
CREATE_CONSUMER = "Create consumer"  # ... of a tenant's new-consumer form
NAME_FIELD = {"tenant": "Tenant name", "consumer": "Consumer name"}
MODELS_FIELD = "Allowed models"
QUOTAS = "Quotas"  # the legend of a form's quota rows
ADD_QUOTA = "Add a quota"  # the button adding a row
QUOTA_ROW = ".//*[@role='group']"  # one quota's fields
QUOTA_FIELDS = {"name": "Name", "limit": "Limit", "window": "Window"}  # a row's text fields
QUOTA_STRATEGY = "Strategy"  # a row's strategy (a select)
QUOTA_BY = "Counted by"  # what a row counts by (a select)
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


def x_fieldset(legend: str) -> str:
    """A fieldset whose legend starts with `legend` (relative)."""
    return f".//fieldset[legend[{_starts_ci(legend)}]]"


X_METER = ".//*[@role='meter']"

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
                problems.append(
                    f"a request left for another origin: {e['type']} {e['name']} (the console is {got['origin']})"
                )
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

    def signed_in(self, token: str) -> None:
        """Signs in with the right token and waits for the pages to be offered."""
        self.sign_in(token)
        self.find(PAGE_LINKS)
        self.settled()

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

    def choose(self, within: str, label: str, option: str) -> None:
        """Picks `option` in the select a label starting with `label` names."""
        select = self.find(x_field(label), within=within)
        self.wd.click(self.find(f".//option[normalize-space()={lit(option)}]", within=select))
        value = self.wd.js("return arguments[0].value", {ELEMENT: select})
        check(value == option, f"the select '{label}' holds {value!r}, not {option!r}")

    def save_entity(self, what: str, name: str, quotas: list[dict], metadata: str, models: str = "*") -> None:
        """Fills and submits the new-tenant or new-consumer form: the name, the
        allowed models, a row per quota (name, by, strategy, limit, window) and
        the metadata."""
        form = self.find(x_form_with_button(CREATE_TENANT if what == "tenant" else CREATE_CONSUMER))
        self.fill(form, NAME_FIELD[what], name)
        self.fill(form, MODELS_FIELD, models)
        for i, q in enumerate(quotas):
            box = self.find(x_fieldset(QUOTAS), within=form)
            self.click("." + x_button(ADD_QUOTA), within=box)
            row = self.find(f"({QUOTA_ROW})[{i + 1}]", within=box)
            for key, label in QUOTA_FIELDS.items():
                self.fill(row, label, str(q[key]))
            self.choose(row, QUOTA_BY, q["by"])
            self.choose(row, QUOTA_STRATEGY, q["strategy"])
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
