"""A W3C WebDriver client of the standard library (urllib + json), as much of
it as the console's browser test needs: a Chromium session through
chromedriver, elements found by XPath, clicks, keys, scripts, screenshots, the
window's size, the browser's log, dialogs and permissions; and `wait_for`, the
polling every step of the test uses."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional


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
            last = f" (last: {last_error})" if last_error else ""
            raise CheckFailed(f"timed out after {timeout} s waiting for {what}{last}")
        time.sleep(0.05)
