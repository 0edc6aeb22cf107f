"""Screenshot an interactive cgtools page in headless Chromium (for the README): `make pictures` runs it.

    python docs/screenshot.py PAGE.html OUT.png [--hover TENSOR] [--width W] [--height H]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page")
    parser.add_argument("out")
    parser.add_argument("--hover", help="hover the edge carrying this tensor")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=640)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=1.5)
        page.goto(Path(args.page).resolve().as_uri())
        page.wait_for_function("window.cgtools && window.cgtools.drawn")
        if args.hover:
            point = page.evaluate("""(name) => {
                const c = window.cgtools, i = c.data.tensors.findIndex(t => t.head.split('\\n')[0] === name);
                const e = c.edges.get('E' + i), a = c.network.getPosition(e.from), b = c.network.getPosition(e.to);
                const p = c.network.canvasToDOM({x: (a.x + b.x) / 2, y: (a.y + b.y) / 2});
                const box = document.getElementById('canvas').getBoundingClientRect();
                return {x: box.left + p.x, y: box.top + p.y}; }""", args.hover)
            page.mouse.move(point["x"] - 20, point["y"] - 40)
            page.mouse.move(point["x"], point["y"], steps=4)
            page.wait_for_selector("#tip", state="visible")
        page.screenshot(path=args.out)
        browser.close()


if __name__ == "__main__":
    main()
