"""report.html as a browser shows it: headless Chromium renders the page of a run.

Checks what a reader needs: the summary table first, the latency tables,
three plots with labelled axes and a log-scale latency axis, nothing wider
than a phone's screen, and a screenshot that is not blank. Chromium comes
from Debian (.ci/system-packages.txt); where it is missing the test fails on
CI (CI=true) and skips elsewhere, saying so.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.html_report import render_html
from loadtest.report import summarise
from loadtest.stats import Stats

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "headless Chromium is not installed (Debian package: chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[tuple[str, Path]]:
    """Chromium and a fresh profile directory, removed afterwards."""
    binary = chromium()
    profile = Path(tempfile.mkdtemp(prefix="ocs-chromium-"))
    try:
        yield binary, profile
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def run_stats(seed: int = 7) -> tuple[dict[str, object], Stats]:
    """A plausible Gy run: 20 s, three commands, a slow tail, a few 4012s."""
    rng = random.Random(seed)
    stats = Stats()
    for second in range(20):
        for _ in range(1200):  # five-digit counts, as a real run's tables have
            command = rng.choice(["CCR-I", "CCR-U", "CCR-U", "CCR-T"])
            micros = int(rng.lognormvariate(7.3, 0.5)) * (20 if rng.random() < 0.01 else 1)
            result = "2001" if rng.random() > 0.003 else "4012"
            stats.answer(command, result, micros, second, result == "2001")
    stats.wall, stats.cpu_user, stats.cpu_system = 20.0, 3.0, 0.5
    summary = summarise(stats, {"completed": 2000, "active": 0}, load_seconds=20)
    summary["spec"] = {
        "protocol": "gy",
        "model": "open",
        "rate": 450.0,
        "concurrency": 64,
        "duration": 20,
        "processes": 1,
        "connections": 2,
        "updates": 3,
        "subscribers": 100,
        "target": "127.0.0.1:3868",
    }
    summary["conservation"] = {
        "ok": True,
        "accounts": 100,
        "records": 2000,
        "money_decrease": 1000,
        "money_recorded": 1000,
        "mismatches": [],
    }
    return summary, stats


# Runs in the page: what the layout engine computed, written into the DOM for --dump-dom.
PROBE = """<script>
addEventListener('load', () => {
  const svgs = [...document.querySelectorAll('figure svg')];
  const wide = svgs.filter(s => s.getBoundingClientRect().width > innerWidth + 1).length;
  document.body.setAttribute('data-viewport', innerWidth);
  document.body.setAttribute('data-scroll-width', document.documentElement.scrollWidth);
  document.body.setAttribute('data-svgs', svgs.length);
  document.body.setAttribute('data-too-wide', wide);
  document.body.setAttribute('data-heights',
    svgs.map(s => Math.round(s.getBoundingClientRect().height)).join(','));
});
</script>"""


def dump_dom(binary: str, profile: Path, page: Path, width: int) -> str:
    done = subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1200",
         "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def attribute(dom: str, name: str) -> str:
    found = re.search(rf'<body[^>]*\s{name}="([^"]*)"', dom)
    assert found, f"{name} not set: the page's script did not run"
    return found.group(1)


def test_report_has_the_summary_first_then_tables_and_labelled_plots(
    browser: tuple[str, Path], tmp_path: Path
) -> None:
    """Chromium's DOM: summary table before everything, latency tables, three labelled plots."""
    binary, profile = browser
    summary, stats = run_stats()
    page = tmp_path / "report.html"
    page.write_text(render_html(summary, stats))
    dom = dump_dom(binary, profile, page, 1280)
    body = dom[dom.index("<body") :]
    first_table = re.search(r"<table[^>]*>", body)
    assert first_table and 'id="summary"' in first_table.group(0)
    assert body.index('id="summary"') < body.index("<svg")
    summary_rows = re.findall(r"<tr><th>([^<]+)</th>", body)
    for row in ("offered rate", "achieved rate", "errors", "conservation"):
        assert row in summary_rows
    assert "450 requests/s (open model)" in body and ">PASS<" in body
    for table in ("by-command", "by-result"):
        assert f'id="{table}"' in body
    assert all(name in body for name in ("CCR-I", "CCR-U", "CCR-T", "4012"))
    for plot in ("plot-rate", "plot-latency", "plot-distribution"):
        svg = re.search(rf'<svg[^>]*id="{plot}".*?</svg>', body, re.S)
        assert svg, f"{plot} missing"
        texts = re.sub(r"<[^>]+>", " ", svg.group(0))
        assert "time since start (s)" in texts or "latency (ms, log scale)" in texts
    labels = re.sub(r"<[^>]+>", " ", body)
    assert labels.count("latency (ms, log scale)") >= 3  # over time, distribution, percentiles
    assert "per second" in labels and "99.9%" in labels


def test_report_fits_a_narrow_screen_and_scales_its_plots(
    browser: tuple[str, Path], tmp_path: Path
) -> None:
    """At 420 px wide: no horizontal scrolling, every plot within the screen (responsive)."""
    binary, profile = browser
    summary, stats = run_stats()
    page = tmp_path / "report.html"
    page.write_text(render_html(summary, stats).replace("</body>", PROBE + "</body>"))
    narrow = dump_dom(binary, profile, page, 420)
    viewport = int(attribute(narrow, "data-viewport"))
    assert attribute(narrow, "data-svgs") == "3"
    assert attribute(narrow, "data-too-wide") == "0"
    assert int(attribute(narrow, "data-scroll-width")) <= viewport
    assert all(int(h) > 50 for h in attribute(narrow, "data-heights").split(","))


def test_screenshot_shows_the_page(browser: tuple[str, Path], tmp_path: Path) -> None:
    """A screenshot at desktop width: not blank, many colours (plots drawn), page-sized."""
    from PIL import Image

    binary, profile = browser
    summary, stats = run_stats()
    page = tmp_path / "report.html"
    page.write_text(render_html(summary, stats))
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1800",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 1800)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, lines, bars: not a blank page
