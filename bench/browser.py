"""The web example (examples/web/index.html) in headless Chromium, served from the repository: what the page
reports back. Used by bench/browser_jpeg.py and tests/test_image_model.py."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def served(extra: Path) -> Iterator[tuple[str, queue.Queue[str]]]:
    """An HTTP server of the repository (the page loads onnxruntime-web's WASM, which file:// cannot), with
    ``extra`` under /fixture/; yields its base URL and the queue that receives what the page POSTs."""
    posted: queue.Queue[str] = queue.Queue()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            if path.startswith("/fixture/"):
                return str(extra / path.split("?")[0].removeprefix("/fixture/"))
            return super().translate_path(path)

        def do_POST(self) -> None:
            posted.put(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(ROOT))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", posted
    finally:
        server.shutdown()
        server.server_close()


def page_results(base: str, posted: queue.Queue[str], query: str, timeout: float = 600) -> list[dict]:
    """Open the page with ``query`` in headless Chromium and return the JSON lines it POSTs when done."""
    url = f"{base}/examples/web/index.html?{query}&report=/results"
    browser = subprocess.Popen(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        text = posted.get(timeout=timeout)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
    return [json.loads(line) for line in text.splitlines()]
