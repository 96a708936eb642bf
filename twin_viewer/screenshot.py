"""Headless Chromium on the twin viewer (software WebGL): open the page, wait until it is loaded, screenshot it.

Used by the browser test, the viewer benchmark and to regenerate the README picture:

    ONEMAP_HOME=... python -m twin_viewer.screenshot docs/images/twin.png

Every request the page makes is recorded (`Session.requests`, websockets included) and so is every console error,
so callers can check that nothing left the server.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-default-apps", "--disable-features=Translate,MediaRouter"]
# The README picture: 渝中/江北 from the south at 9 km — parcels by land class, control lines, conflicts, district
# names and buildings on the terrain — with the indicator panel open.
README_HASH = "view=106.545000,29.470000,9000.0,15.00,-40.00,0.00&tab=indicators"


@dataclass
class Session:
    """One page of the viewer with everything it requested and every console error it logged."""

    page: object
    base_url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """Requests to any host other than the server (data: and blob: URLs stay in the page)."""
        own = urlsplit(self.base_url).netloc
        return [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob")
                and urlsplit(u).netloc != own]

    def sign_in(self, token: str, timeout_s: float = 60) -> None:
        """Sign in as a person does with a printed link: the token rides in the fragment (never sent to the server),
        the sign-in page posts it and lands on the viewer with the session cookie set."""
        self.page.goto(f"{self.base_url}/viewer/signin#token={token}")
        self.page.wait_for_function("() => location.pathname === '/viewer/' && window.twin !== undefined",
                                    timeout=timeout_s * 1000)

    def open(self, hash_: str = "", timeout_s: float = 90) -> float:
        """Load the viewer and wait until globe, tileset and panels report loaded; return the seconds it took."""
        started = time.perf_counter()
        self.page.goto(f"{self.base_url}/viewer/" + (f"#{hash_}" if hash_ else ""))
        self.wait_ready(timeout_s)
        return time.perf_counter() - started

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Wait for window.twin.ready, raising with the page's own errors if it never comes."""
        failed = None
        try:
            self.page.wait_for_function("() => window.twin && (twin.ready === true || twin.errors.length > 0)",
                                        timeout=timeout_s * 1000, polling=100)
        except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError, reported below with the page state
            failed = exc
        state = self.page.evaluate("() => window.twin && {ready: twin.ready, globe: twin.globeLoaded, "
                                   "tileset: twin.tilesetLoaded, data: twin.dataLoaded, errors: twin.errors}")
        if failed is not None or not state["ready"]:
            raise RuntimeError(f"the viewer did not load in {timeout_s} s: {state}; console errors: "
                               f"{self.console_errors[:5]}") from failed

    def settle(self, timeout_s: float = 60) -> None:
        """After a change in the page (layer, camera): wait for a new frame and for the tiles to load again."""
        self.page.evaluate("() => { twin.ready = false; twin.viewer.scene.requestRender(); }")
        self.wait_ready(timeout_s)


@contextmanager
def browser_session(base_url: str, width: int = 1280, height: int = 800) -> Iterator[Session]:
    """A Chromium page on `base_url`, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
            page = context.new_page()
            session = Session(page, base_url)
            page.on("request", lambda r: session.requests.append(r.url))
            page.on("websocket", lambda ws: session.requests.append(ws.url))
            page.on("console", lambda m: session.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: session.console_errors.append(f"page error: {e}"))
            yield session
        finally:
            browser.close()


def take_screenshot(base_url: str, token: str, output: Path, hash_: str = README_HASH,
                    width: int = 1600, height: int = 900) -> Path:
    with browser_session(base_url, width, height) as session:
        session.sign_in(token)
        session.open(hash_, timeout_s=900)  # not a measurement: a loaded machine may take minutes
        session.page.wait_for_timeout(3500)  # the "loaded in" badge fades out
        output.parent.mkdir(parents=True, exist_ok=True)
        session.page.screenshot(path=str(output))
    return output


def main() -> None:
    from twin_viewer.server.app import create_app
    from twin_viewer.server.run import serve_in_thread
    from twin_viewer.server.twin_grants import governance_center_token

    parser = argparse.ArgumentParser(description="Screenshot the twin viewer over $ONEMAP_HOME.")
    parser.add_argument("output", type=Path, nargs="?", default=Path("docs/images/twin.png"))
    parser.add_argument("--hash", default=README_HASH, help="permalink state to open")
    args = parser.parse_args()
    with serve_in_thread(create_app()) as url:
        print(take_screenshot(url, governance_center_token(timedelta(hours=1)), args.output, args.hash))


if __name__ == "__main__":
    main()
