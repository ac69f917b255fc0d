"""The review page's latency: a key press to the next item drawn, in headless Chromium.

Builds a dataset of simulated picks (or takes --dataset), serves `grasp-autolabel review` on it
and presses `a` (accept, saved at once, then the next item) and `n` (next) on --items items each,
reading the page's own timings (key press -> the next item's image decoded and drawn, one
animation frame later). Prints p50 / p95 / max. Goal (issue 26): p95 <= 150 ms over 100 items.

    scripts/in-env.sh python bench/review.py [--items 100] [--dataset DIR]
"""
import argparse
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from grasp_autolabel.cli.review import ReviewServer
from grasp_autolabel.dataset.store import GraspDataset
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig


def _dataset(root: Path, items: int) -> Path:
    per = 13
    sessions = simulate(root / 'sim', sequences=-(-(items + 1) // per), seed=2600, progress=False,
                        config=CellConfig(n_logs=(per, per), fault_rate=0.1))
    label_sessions(sessions, root / 'ds', progress=False)
    return root / 'ds'


def _timings(page, key: str, n: int) -> np.ndarray:
    page.evaluate('window.reviewTimings = []')
    for k in range(n):
        index = page.get_attribute('#view', 'data-index')
        page.keyboard.press(key)
        page.wait_for_function(f'document.querySelector("#view").dataset.index != "{index}" '
                               f'&& window.reviewTimings.length > {k}')
    return np.asarray(page.evaluate('window.reviewTimings'))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--items', type=int, default=100)
    ap.add_argument('--dataset', type=Path, help='a dataset to copy (default: simulate one)')
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.dataset:
            ds_path = shutil.copytree(args.dataset, root / 'ds')
        else:
            ds_path = _dataset(root, 2 * args.items + 1)
        n = min(args.items, (len(GraspDataset.open(ds_path).item_indices()) - 1) // 2)
        server = ReviewServer(ds_path, port=0, log=lambda *a, **k: None)
        threading.Thread(target=server.serve, daemon=True).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which('chromium'),
                                            args=['--no-sandbox'])
                page = browser.new_page(viewport={'width': 1300, 'height': 900})
                page.goto(server.url)
                page.wait_for_selector('#grid[data-show="all"]')
                page.click('.cell >> nth=0')
                page.wait_for_selector('#view image')
                for key, what in (('n', 'next'), ('a', 'accept (saved) + next')):
                    t = _timings(page, key, n)
                    print(f'{what:22s} {len(t)} items (640x480): p50 {np.percentile(t, 50):.0f} ms, '
                          f'p95 {np.percentile(t, 95):.0f} ms, max {t.max():.0f} ms', flush=True)
                browser.close()
        finally:
            server.server.shutdown()
            server.close()


if __name__ == '__main__':
    main()
