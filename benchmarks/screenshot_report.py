"""Screenshot an HTML report in headless Chromium (checks it renders without network access).

Usage::

    python benchmarks/screenshot_report.py reports/run.html            # -> benchmarks/results/run.png
    python benchmarks/screenshot_report.py models/run --out shot.png   # writes the report first

Needs ``chromium`` on PATH (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def chromium_binary() -> str:
    """Path of a Chromium/Chrome executable (SystemExit naming the install command if none)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("chromium not found: apt-get install -y chromium")


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 3000) -> Path:
    """Render ``html`` headless at ``width`` x ``height`` and save the PNG."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="report .html, or a run directory to report first")
    parser.add_argument("--out", type=Path, help="PNG (default benchmarks/results/<name>.png)")
    parser.add_argument("--height", type=int, default=3000)
    arguments = parser.parse_args()
    html = arguments.source
    if html.is_dir():
        from bayesmir import load_fit, report

        html = report(load_fit(html), RESULTS / f"{html.name}.html")
    png = screenshot(html, arguments.out or RESULTS / f"{html.stem}.png", height=arguments.height)
    print(f"screenshot written to {png}")


if __name__ == "__main__":
    main()
