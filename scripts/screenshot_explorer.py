"""Make docs/explorer.png, the README's picture of `topics explore`, from the demo's data.

Runs `topics demo` into a home of its own (kept, so a second run reuses it; --fresh starts over), serves
the explorer on a free loopback port, opens it in headless chromium (Playwright driving /usr/bin/chromium,
every request off loopback aborted) and screenshots the overview of the task map with a point's tooltip.

    python scripts/screenshot_explorer.py                      # writes docs/explorer.png
    python scripts/screenshot_explorer.py --out /tmp/x.png --home /tmp/demo-home --fresh
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]


def demo_home(home: Path, fresh: bool, project: str) -> Path:
    db = home / "topics.duckdb"
    if fresh and home.exists():
        shutil.rmtree(home)
    if not db.exists():
        env = {**os.environ, "TOPICS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        print(f"running topics demo into {home} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "topics_assets.cli", "demo", "--project", project], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "explorer.png"))
    ap.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "topics-screenshot-home"))
    ap.add_argument("--fresh", action="store_true", help="run the demo again even if the home has a store")
    ap.add_argument("--project", default="acme-support")
    ap.add_argument("--facet", default="task")
    args = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from topics_assets.explore.app import create_app
    from topics_assets.store import open_store

    store = open_store(str(demo_home(Path(args.home), args.fresh, args.project)), lock_wait_s=30.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            context = browser.new_context(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
            context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(f"http://127.0.0.1:{port}/")
                          else r.abort())
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/#/?project={args.project}&facet={args.facet}")
            page.wait_for_selector("canvas#map[data-drawn][data-texts]")
            # The whole page in the viewport (the map redraws on resize), so the pointer can reach the map.
            height = page.evaluate("document.documentElement.scrollHeight")
            page.set_viewport_size({"width": 1360, "height": min(height, 2000)})
            page.wait_for_timeout(300)
            # A point's tooltip, on a point near the middle of the map's densest topic.
            canvas = page.locator("canvas#map")
            spot = page.evaluate("""() => {
                const d = mapData;
                const own = [...d.x.keys()].filter(i => d.topic[i] === 0);
                const mx = own.reduce((s, i) => s + mapIndex.sx[i], 0) / own.length;
                const my = own.reduce((s, i) => s + mapIndex.sy[i], 0) / own.length;
                own.sort((a, b) => ((mapIndex.sx[a] - mx) ** 2 + (mapIndex.sy[a] - my) ** 2)
                                 - ((mapIndex.sx[b] - mx) ** 2 + (mapIndex.sy[b] - my) ** 2));
                return [mapIndex.sx[own[0]], mapIndex.sy[own[0]]];
            }""")
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + spot[0], box["y"] + spot[1])
            page.wait_for_selector("#tooltip:not([hidden])")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.should_exit = True
    print(f"{args.out}: {Path(args.out).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
