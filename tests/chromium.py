"""A small headless-Chromium driver for tests: the DevTools protocol over ``--remote-debugging-pipe``.

Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on
fd 4, so no websocket library and no network port are needed. Used by test_gallery.py
(and handy for a screenshot by hand: ``python tests/chromium.py page.html shot.png``).
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--mute-audio",
]


def find_chromium() -> str | None:
    """The chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The two fds moved to numbers >= 10, so the redirections 3<&N 4>&M cannot clash with 3 and 4."""
    import fcntl

    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved  # type: ignore[return-value]


def _error_of(event: dict[str, Any]) -> str | None:
    """The text of an event that reports an error on the page (an exception, console.error, a failed load)."""
    method, params = event.get("method"), event.get("params") or {}
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails") or {}
        return f"exception: {(details.get('exception') or {}).get('description') or details.get('text')}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
    if method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('source')}: {entry.get('text')} {entry.get('url') or ''}".strip()
    return None


class Browser:
    """One headless Chromium with a fresh profile and one page (tab)."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="featviz-chromium-")
        self._log = open(Path(self.profile) / "stderr.log", "wb")  # noqa: SIM115 - closed in close()
        to_child_r, self._w = _high(os.pipe())
        self._r, from_child_w = _high(os.pipe())
        # bash puts our pipe ends on fds 3 and 4, where Chromium expects them (dash takes one-digit fds only).
        script = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", script, executable, *FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.errors: list[str] = []  # JavaScript exceptions, console errors and failed loads, as they arrive
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Log.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    # -- protocol

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        try:
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            log = (Path(self.profile) / "stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chromium is gone: {log}") from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for (and consume) the next event ``method`` of our page."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == self.session:
                    return self.events.pop(i)
            self.events.append(self._next(deadline))

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                log = (Path(self.profile) / "stderr.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium exited: {log}")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        event = json.loads(msg)
        error = _error_of(event)
        if error:
            self.errors.append(error)
        return event

    # -- page helpers

    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait for its load event (all non-lazy images loaded or failed)."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON-able)."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def follow(self, selector: str) -> None:
        """Click the first element matching ``selector`` and wait for the page it opens."""
        self.events.clear()
        found = self.eval(f"(e => {{ if (!e) return false; e.click(); return true; }})"
                          f"(document.querySelector({json.dumps(selector)}))")
        if not found:
            raise AssertionError(f"no element {selector!r} on {self.eval('location.href')}")
        self.wait_event("Page.loadEventFired")

    def press(self, key: str, code: int) -> None:
        """Press and release a key (e.g. ``ArrowRight``, 39); waits for a navigation it starts."""
        self.events.clear()
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                 "windowsVirtualKeyCode": code}, session=True)
        self.wait_event("Page.loadEventFired")

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        """Save a PNG of the viewport (or the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Stop chromium and remove its profile."""
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # python tests/chromium.py PAGE.html SHOT.png [full]
    exe = find_chromium()
    if exe is None:
        sys.exit("chromium not found")
    with Browser(exe) as b:
        b.open(Path(sys.argv[1]).resolve().as_uri())
        b.screenshot(Path(sys.argv[2]), full_page=len(sys.argv) > 3)
        print(b.eval("JSON.stringify(Array.from(document.images).map(i => i.naturalWidth))"))
