"""The figure gallery: ``figures/index.html`` links every figure (interactive HTML, PNG, SVG) with a
caption giving the command that made it, and checks in the browser that each image rendered."""

import html
import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from workbench.experiments.export import chromium_path
from workbench.paths import figures_dir


@dataclass(frozen=True)
class GalleryEntry:
    """One figure in the gallery: its file stem in the figures directory, a title, a caption and the
    command that regenerates it; ``numbers`` are the headline values shown under it."""

    name: str
    title: str
    caption: str
    command: str
    numbers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"gallery entry name must be a figure file stem, got {self.name!r}")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>workbench figure gallery</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }}
h1 {{ margin-bottom: .2rem; }} .sub {{ color: #555; margin-top: 0; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 1.5rem; }}
figure {{ margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: .8rem; background: #fff; }}
figure img {{ width: 100%; height: auto; display: block; }}
figcaption {{ font-size: .92rem; line-height: 1.35; margin-top: .5rem; }}
code {{ background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; font-size: .85rem; }}
.links a {{ margin-right: .8rem; font-size: .85rem; }} table {{ font-size: .85rem; border-collapse: collapse; }}
td {{ padding: .1rem .6rem .1rem 0; }} .missing {{ color: #b00; }}
</style></head><body>
<h1>workbench figure gallery</h1>
<p class="sub">{subtitle}</p>
<div class="grid">
{figures}
</div>
<script>
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("figure img"), ok = 0;
  imgs.forEach(function (img) {{
    var good = img.complete && img.naturalWidth > 0;
    img.parentElement.setAttribute("data-rendered", good ? "yes" : "no");
    if (good) ok += 1;
  }});
  document.body.setAttribute("data-rendered", ok + "/" + imgs.length);
}});
</script>
</body></html>
"""


def _figure_html(e: GalleryEntry, directory: Path) -> str:
    links = " ".join(
        f'<a href="{e.name}.{ext}">{label}</a>'
        for ext, label in (("html", "interactive"), ("png", "PNG"), ("svg", "SVG"), ("pdf", "PDF"))
        if (directory / f"{e.name}.{ext}").exists()
    )
    nums = "".join(f"<tr><td>{html.escape(k)}</td><td><b>{html.escape(v)}</b></td></tr>" for k, v in e.numbers.items())
    img = (
        f'<img src="{e.name}.png" alt="{html.escape(e.title)}">'
        if (directory / f"{e.name}.png").exists()
        else f'<p class="missing">missing {e.name}.png</p>'
    )
    return (
        f'<figure id="{e.name}">{img}<figcaption><b>{html.escape(e.title)}.</b> {html.escape(e.caption)}<br>'
        f"Made by: <code>{html.escape(e.command)}</code>"
        f'{"<table>" + nums + "</table>" if nums else ""}<div class="links">{links}</div></figcaption></figure>'
    )


def write_gallery(
    entries: Sequence[GalleryEntry],
    directory: Optional[Path] = None,
    *,
    subtitle: str = "Figures from the workbench tour on SmolLM2-135M-Instruct.",
) -> Path:
    """Write ``index.html`` (and ``gallery.json``, the same entries as data) into ``directory``."""
    if not entries:
        raise ValueError("the gallery needs at least one figure entry")
    directory = figures_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    page = _PAGE.format(subtitle=html.escape(subtitle), figures="\n".join(_figure_html(e, directory) for e in entries))
    out = directory / "index.html"
    out.write_text(page)
    (directory / "gallery.json").write_text(json.dumps([e.__dict__ for e in entries], indent=2))
    return out


def _chromium(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    exe = chromium_path()
    if exe is None:
        raise RuntimeError(
            "no Chromium found: install Debian's chromium (apt-get install chromium) or set BROWSER_PATH"
        )
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
        ]
        return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=timeout)


def rendered_in_browser(index: Path) -> dict[str, str]:
    """Load the gallery in headless Chromium and return ``{figure id: "yes"|"no"}`` (did its image render)."""
    import re

    res = _chromium(["--virtual-time-budget=10000", "--dump-dom", index.resolve().as_uri()])
    dom = res.stdout
    if "<figure" not in dom:
        raise RuntimeError(f"Chromium returned no gallery DOM (exit {res.returncode}): {res.stderr[-500:]}")
    return dict(re.findall(r'<figure id="([^"]+)" data-rendered="(yes|no)"', dom))


def screenshot(index: Path, out: Path, width: int = 1400, height: int = 4000) -> Path:
    """Take a full-page screenshot of the gallery with headless Chromium."""
    _chromium(
        [
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=10000",
            index.resolve().as_uri(),
        ]
    )
    if not out.exists():
        raise RuntimeError(f"Chromium did not write the screenshot {out}")
    return out
