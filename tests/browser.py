"""Debian's headless chromium for the listening pages: the page's audio status after loading, a screenshot, and
``Chromium``, a browser driven over the DevTools protocol (clicks, key presses, reloads, downloads)."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOAD_FLAGS = FLAGS + ["--virtual-time-budget=60000"]


def audio_status(chromium: str, page: Path, profile: Path) -> dict:
    """The page's #audio-status once loaded: loaded and failed counts, and the durations (s) of the players."""
    dom = subprocess.run([chromium, *LOAD_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=300).stdout
    tag = re.search(r'<p id="audio-status"[^>]*>', dom).group(0)
    status = dict(re.findall(r'data-(\w+)="([^"]*)"', tag))
    status["durations"] = [float(d) for d in status["durations"].strip("[]").split(",") if d]
    return status


def screenshot(chromium: str, page: Path, profile: Path, out: Path) -> None:
    subprocess.run([chromium, *LOAD_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,900",
                    f"--screenshot={out}", page.as_uri()], capture_output=True, timeout=300, check=True)


# Keys as the DevTools protocol's Input.dispatchKeyEvent wants them: key → (code, Windows virtual key code).
KEY_CODES = {"Tab": ("Tab", 9), "Enter": ("Enter", 13), " ": ("Space", 32)}


def key_event(key: str) -> dict:
    """The fields of a key press of ``key`` (a letter, a digit, Tab, Enter or a space)."""
    if key in KEY_CODES:
        code, number = KEY_CODES[key]
    elif key.isdigit():
        code, number = f"Digit{key}", ord(key)
    else:
        code, number = f"Key{key.upper()}", ord(key.upper())
    text = {"text": key} if key != "Tab" else {}
    return {"key": key, "code": code, "windowsVirtualKeyCode": number, **text}


class Chromium:
    """A headless chromium with one page, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    commands as NUL-terminated JSON on fd 3, replies on fd 4). Dialogs (``confirm``) are accepted; downloads go
    to ``downloads``."""

    def __init__(self, chromium: str, profile: Path, downloads: Path, timeout_s: float = 60):
        self.timeout_s, self.downloads, self.events = timeout_s, downloads, []
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def attach_pipes():
            into, out = os.dup(to_browser), os.dup(from_browser)
            os.dup2(into, 3)
            os.dup2(out, 4)

        self.process = subprocess.Popen([chromium, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
                                         "--window-size=1200,900", "about:blank"], preexec_fn=attach_pipes,
                                        close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = next(t for t in self.command("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.command("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        self.command("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads),
                     eventsEnabled=True, browser=True)
        for domain in ("Page", "Runtime"):
            self.command(f"{domain}.enable")

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        os.close(self._commands)
        os.close(self._replies)

    # ------------------------------------------------------------ the protocol

    def _send(self, method: str, params: dict, session) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"chromium sent nothing for {self.timeout_s} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.process.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(line)
        if message.get("method") == "Page.javascriptDialogOpening":
            self._send("Page.handleJavaScriptDialog", {"accept": True}, message.get("sessionId"))
        if "method" in message:
            self.events.append(message)
        return message

    def command(self, method: str, browser: bool = False, **params) -> dict:
        """The result of one command, to the page (once attached) or, with ``browser``, to the browser."""
        number = self._send(method, params, None if browser else self.session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._receive(deadline)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event: str, since: int = 0) -> dict:
        """The first ``event`` received after the ``since``-th event, waiting for it."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            found = next((e for e in self.events[since:] if e["method"] == event), None)
            if found:
                return found
            self._receive(deadline)

    # ------------------------------------------------------------ what a person does

    def _loaded(self, action: str, **params) -> None:
        mark = len(self.events)
        self.command(action, **params)
        self.wait_for("Page.loadEventFired", mark)

    def open(self, url: str) -> None:
        self._loaded("Page.navigate", url=url)

    def reload(self) -> None:
        self._loaded("Page.reload")

    def evaluate(self, expression: str):
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A left click at the middle of the element ``selector`` picks, scrolled into view first."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.command("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def press(self, key: str, repeats: int = 0) -> None:
        """A key press, held for ``repeats`` auto-repeated key-downs before it is released."""
        event = key_event(key)
        self.command("Input.dispatchKeyEvent", type="keyDown", **event)
        for _ in range(repeats):
            self.command("Input.dispatchKeyEvent", type="keyDown", autoRepeat=True, **event)
        self.command("Input.dispatchKeyEvent", type="keyUp", **{k: v for k, v in event.items() if k != "text"})

    def type(self, text: str) -> None:
        self.command("Input.insertText", text=text)

    def screenshot(self, out: Path) -> None:
        out.write_bytes(base64.b64decode(self.command("Page.captureScreenshot", format="png")["data"]))

    def downloaded(self, since: int = 0) -> Path:
        """The file of the first download finished after the ``since``-th event."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            done = [e for e in self.events[since:] if e["method"] == "Browser.downloadProgress"
                    and e["params"]["state"] == "completed"]
            if done:
                begun = next(e for e in self.events if e["method"] == "Browser.downloadWillBegin"
                             and e["params"]["guid"] == done[0]["params"]["guid"])
                return self.downloads / begun["params"]["suggestedFilename"]
            self._receive(deadline)
