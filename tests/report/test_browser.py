"""Reports open in a real headless Chromium: drawn (not blank), no console error, no request.

Chromium runs with a scratch profile, a proxy on a dead loopback port and a resolver that
resolves nothing, and is driven over the DevTools protocol on 127.0.0.1 (cdp.py). The test
command installs Debian's ``chromium`` when it is missing and sets
IMMUTABLE_SDK_NEED_CHROMIUM=1, so there these tests fail instead of skipping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.report import load_report, write_report
from immutable_sdk.testing import AMI_V1, AMI_V2, sample_spec
from immutable_sdk.testing.testbed import SandboxAccount

from .cdp import chromium, open_page
from .journal import write_canary_journal
from .png import decode

pytestmark = pytest.mark.skipif(
    chromium() is None and not os.environ.get("IMMUTABLE_SDK_NEED_CHROMIUM"),
    reason="needs chromium (scripts/test installs it: apt-get install -y chromium)",
)

GREEN = (0x16, 0xA3, 0x4A)  # a step that passed, the healthy line
RED = (0xDC, 0x26, 0x26)  # a failed step, the max line


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(pixel, colour, strict=False))


def look(path: Path) -> list[tuple[int, ...]]:
    """Open the report; assert the browser logged and fetched nothing; the pixels shown."""
    page = open_page(path)
    assert page.console_errors == []
    assert page.requests == []
    image = decode(page.png)
    assert image.width >= 400 and image.height >= 400, (image.width, image.height)
    return image.pixels()


def test_a_canary_report_is_drawn_offline_without_errors(tmp_path: Path) -> None:
    state = write_canary_journal(tmp_path / "state.db")
    report = load_report(state, "checkout", "ro-canary", home_region="us-east-1")
    state.close()
    out = tmp_path / "canary.html"
    write_report(report, out)
    pixels = look(out)
    drawn = sum(1 for p in pixels if p != (255, 255, 255))
    assert drawn / len(pixels) > 0.03, drawn / len(pixels)  # not blank
    assert len(set(pixels)) > 50  # charts, not one flat colour
    assert sum(1 for p in pixels if near(p, GREEN)) > 200  # passed steps, healthy line
    assert sum(1 for p in pixels if near(p, RED)) > 100  # the failed analysis, its max line


def test_history_report_of_a_real_rollout_opens_in_chromium(
    sandbox_account: SandboxAccount, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        sample_spec(desired=3, strategy="{type: rolling, batch_size: 1, bake: 1m}")
        + "state: {backend: local, path: state.db}\n"
    )
    assert sandbox_account.run(spec, image=AMI_V1).result.ok
    second = sandbox_account.run(spec, image=AMI_V2)
    assert second.result.ok
    out = tmp_path / "reports" / "web.html"
    runner = CliRunner()
    env = {"IMAGE_ID": AMI_V2}
    base = ["--endpoint-url", sandbox_account.url]
    result = runner.invoke(
        main, [*base, "history", "-f", str(spec), "--fleet", "web", "--report", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    pixels = look(out)
    assert sum(1 for p in pixels if p != (255, 255, 255)) / len(pixels) > 0.03
    assert sum(1 for p in pixels if near(p, GREEN)) > 200
    page = out.read_text()
    assert "retire 1 instance(s) of the previous release" in page
    assert "min_healthy 3" in page  # rolling's default 100% of desired 3
    shown = runner.invoke(
        main,
        [
            *base,
            "history",
            "-o",
            "json",
            "-f",
            str(spec),
            "--fleet",
            "web",
            "--rollout",
            second.fleet().rollout or "",
        ],
        env=env,
    )
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["outcome"] == "promoted"
    assert [s["kind"] for s in data["steps"]][:3] == ["launch", "gate", "bake"]
    assert {p["healthy"] for p in data["capacity"]} >= {3}


def test_the_browser_check_sees_requests_and_console_errors(tmp_path: Path) -> None:
    """The harness is not blind: a page that fetches and logs an error is caught (and the
    fetch never leaves the machine: the proxy is a dead loopback port)."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="https://example.com/pixel.png">'
        '<script>console.error("broken chart")</script></body></html>'
    )
    seen = open_page(page)
    assert "https://example.com/pixel.png" in seen.requests
    assert any("broken chart" in e for e in seen.console_errors)


def test_the_markdown_reports_mermaid_renders_without_errors(tmp_path: Path) -> None:
    """Every Mermaid block of the Markdown report is drawn by the Mermaid the docs ship
    (docs/js/mermaid.min.js, loaded from disk): a syntax error would show as an error."""
    import re
    from html import escape

    from immutable_sdk.report import render

    state = write_canary_journal(tmp_path / "state.db")
    report = load_report(
        state,
        "checkout",
        "ro-canary",
        home_region="us-east-1",
        waves=lambda keys: {k: "rest" for k in keys},
    )
    state.close()
    blocks = re.findall(r"```mermaid\n(.*?)```", render(report, "markdown"), re.S)
    assert len(blocks) == 4
    mermaid = Path(__file__).resolve().parents[2] / "docs" / "js" / "mermaid.min.js"
    page = tmp_path / "mermaid.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        + "".join(f'<pre class="mermaid">{escape(b)}</pre>' for b in blocks)
        + f'<script src="{mermaid.as_uri()}"></script></body></html>'
    )
    seen = open_page(
        page,
        evaluate=(
            "mermaid.initialize({startOnLoad: false, securityLevel: 'strict'})"
            " || mermaid.run({querySelector: 'pre.mermaid'}).then(() =>"
            " [...document.querySelectorAll('pre.mermaid')].map(p =>"
            " [p.querySelectorAll('svg').length, p.textContent.includes('Syntax error')]))"
        ),
    )
    assert seen.console_errors == []
    assert seen.requests == [mermaid.as_uri()]  # the one script, from disk
    assert seen.value == [[1, False]] * 4
