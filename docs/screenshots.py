"""The PNGs in docs/: a trained model's try-it page, its model card, and the runs pages, in headless Chromium.

    python docs/screenshots.py RUN RUNS_DIR [--compare NAME NAME] [--text "wake me up at seven tomorrow"] [--out docs]

Starts `minbert serve RUN --runs RUNS_DIR` on a free loopback port, types the text into the model page,
then opens the runs list, two runs side by side (--compare; default the first two listed), RUN's report
and its card. Needs Debian's
chromium (/usr/bin/chromium) and the playwright package (a test dependency), like tests/serving/test_browser.py.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"minbert serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"minbert serve did not answer at {url} within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--compare", nargs=2, metavar="NAME", help="the two runs to compare (names in RUNS_DIR)")
    parser.add_argument("--text", default="wake me up at seven tomorrow")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    minbert = [sys.executable, "-m", "minbert"]
    command = [*minbert, "serve", str(args.run), "--runs", str(args.runs_dir), "--port", str(port)]
    server = subprocess.Popen(command)
    try:
        wait_until_up(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(url + "/")
            page.fill("#first", args.text)
            page.click("#go")
            page.wait_for_selector("#out .label", timeout=60_000)
            save(page, args.out / "page.png")
            page.goto(url + "/runs")
            page.wait_for_selector("#runs tbody tr")
            save(page, args.out / "runs.png")
            boxes = page.query_selector_all("input.pick")
            for box in [b for b in boxes if b.get_attribute("value") in args.compare] if args.compare else boxes[:2]:
                box.check()
            page.click("text=Compare the ticked runs")
            page.wait_for_selector("img[alt='dev curves']")
            save(page, args.out / "compare.png")
            page.goto(url + f"/runs/run?name={args.run.name}")
            page.wait_for_selector("img[alt='Learning curves']")
            save(page, args.out / "run.png", full_page=False)  # the top of a long report: small PNGs
            page.click("text=model card")
            page.wait_for_selector("h1")
            page.evaluate("window.scrollTo(0, document.querySelector('h1').offsetTop - 16)")  # past the front matter
            save(page, args.out / "card.png", full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait()


def save(page, path: Path, full_page: bool = True) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
