"""The ranking page's layout and keyboard path, measured in a real headless browser (Debian's
chromium driven by playwright, as test_userstudy_browser.py; skipped with the reason otherwise).

A study with a reference image, three methods and the paper's four criteria, at a desktop
(1366 x 768) and a phone (390 x 844) viewport:

- the videos stay in the viewport while the last criterion's ranking controls are in view (and not
  covered by them);
- the first "Rank next" is at most 4 Tab presses from the top of the page and 2 from the trial
  heading (where the page puts the focus on each trial), counted by pressing Tab and reading
  ``document.activeElement``; the skip link (the first Tab stop) reaches it with Enter; the focus
  is drawn;
- the "Reference" caption sits right under its thumbnail.

The measured figures are printed (``pytest -s``) and written to ``layout.json`` beside the
screenshots in ``$USERSTUDY_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from userstudy_data.browser import chromium_page, served, skip_unless_chromium
from userstudy_data.helpers import METHODS, video_bytes

from userstudy import make_study as make_study_command

skip_unless_chromium()

PAPER_CRITERIA = ["identity preservation", "visual quality", "temporal consistency", "sound-video synchronization"]
VIEWPORTS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
TRIALS = [f"t{i:02d}" for i in range(1, 11)]   # ten trials: ten buttons in the trial list
# Tab presses to the first "Rank next": from the top of the page, past the skip link, the trial list
# and the video strip (each one stop); from the trial heading, where each trial puts the focus.
MAX_TABS_FROM_TOP = 4
MAX_TABS_FROM_HEADING = 2
RANK_CONTROL = ".criterion button.place:not([disabled])"


def png(width: int, height: int) -> bytes:
    """A plain grey PNG (the reference portrait), written with zlib alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def study_with_reference(root: Path) -> Path:
    sources, references = root / "generated", root / "references"
    references.mkdir(parents=True)
    for method in METHODS:
        (sources / method).mkdir(parents=True)
        for t in TRIALS:
            (sources / method / f"{t}.mp4").write_bytes(video_bytes(method, t))
    for t in TRIALS:
        (references / f"{t}.png").write_bytes(png(96, 128))
    folder = root / "study"
    make_study_command.make_study(folder, {m: sources / m for m in METHODS}, criteria=PAPER_CRITERIA,
                                  title="Layout study", seed="layout", references=references, play_through=False)
    return folder


def tabs_to_rank_control(page, start: str, limit: int = 60) -> int | None:
    """Tab presses from ``start`` (clicked, or focused if it is the heading) to the first rank control."""
    if start == "top":
        page.evaluate("() => window.scrollTo(0, 0)")
        page.mouse.click(2, 2)          # the top-left corner of the page: Tab starts from the beginning
    else:
        page.focus(start)
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", RANK_CONTROL):
            return presses
    return None


GEOMETRY = """() => {
  const rect = (node) => { const r = node.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height}; };
  const last = Array.from(document.querySelectorAll('.criterion')).pop();
  const controls = Array.from(last.querySelectorAll('button.place, .slot'));
  const covered = controls.filter((c) => { const r = c.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return !(hit && c.contains(hit)); }).length;
  const media = Array.from(document.querySelectorAll('#videos video, #reference img'));
  return {viewport: {width: innerWidth, height: innerHeight}, scrollY: scrollY,
          media: media.map(rect), tiles: Array.from(document.querySelectorAll('#stage figure'), rect),
          controls: controls.map(rect), covered,
          last_criterion: rect(last),
          // in page coordinates: from the bottom of the lowest video to the bottom of the last criterion
          page_distance: last.getBoundingClientRect().bottom
            - Math.max(...media.map((m) => m.getBoundingClientRect().bottom))};
}"""

CAPTION = """() => {
  const figure = document.querySelector('#reference figure');
  const thumb = figure.querySelector('img, video').getBoundingClientRect();
  const caption = figure.querySelector('figcaption').getBoundingClientRect();
  return {gap: caption.top - thumb.bottom,
          centre_offset: Math.abs((caption.left + caption.right) / 2 - (thumb.left + thumb.right) / 2),
          caption_width: caption.width, thumb_width: thumb.width};
}"""


def in_view(box: dict, viewport: dict) -> bool:
    return box["top"] >= -0.5 and box["bottom"] <= viewport["height"] + 0.5 and box["left"] >= -0.5 \
        and box["right"] <= viewport["width"] + 0.5 and box["height"] > 0


@pytest.mark.parametrize("name", list(VIEWPORTS))
def test_videos_stay_in_view_the_keyboard_path_is_short_and_the_caption_is_under_its_thumbnail(tmp_path, name):
    study_dir = study_with_reference(tmp_path)
    shots = Path(os.environ.get("USERSTUDY_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    phone = name == "phone"
    with served(study_dir) as server, chromium_page(
            tmp_path / "chromium-profile", viewport=VIEWPORTS[name], is_mobile=phone, has_touch=phone,
            device_scale_factor=2 if phone else 1) as (page, errors):
        page.goto(server.url)
        page.click("#start-new")
        page.wait_for_selector("#study:not([hidden])")
        page.wait_for_function("() => Array.from(document.querySelectorAll('#reference img'))"
                               ".every((i) => i.complete)")
        figures: dict = {"viewport": VIEWPORTS[name]}

        # -- the Reference caption, right under its thumbnail --------------------------------------
        caption = page.evaluate(CAPTION)
        figures["reference_caption"] = {k: round(v, 1) for k, v in caption.items()}

        # -- the keyboard path ---------------------------------------------------------------------
        figures["tabs_from_top"] = tabs_to_rank_control(page, "top")
        figures["tabs_from_heading"] = tabs_to_rank_control(page, "#trial-heading")
        # inside the video strip (one Tab stop) the arrow keys go from control to control
        page.focus("#play-all")
        labels = []
        for key in ("ArrowRight", "ArrowRight", "End", "Home", "ArrowLeft"):
            page.keyboard.press(key)
            labels.append(page.evaluate("() => document.activeElement.getAttribute('aria-label')"
                                        " || document.activeElement.textContent"))
        assert labels[0].startswith("Play video ") and labels[0].endswith(" with sound"), labels
        assert labels[1].endswith(" does not play") and labels[2].endswith(" does not play"), labels
        assert labels[3] == "▶ Play all (muted)" and labels[4] == labels[2], labels
        page.keyboard.press("Enter")      # report the last video: the focus goes to its play button
        page.wait_for_function("() => document.querySelectorAll('#videos button.report:disabled').length === 1")
        assert page.evaluate("() => document.activeElement.matches('#videos figure:last-child button.play')")
        page.evaluate("() => window.scrollTo(0, 0)")
        page.mouse.click(2, 2)
        page.keyboard.press("Tab")
        skip = page.evaluate("() => ({id: document.activeElement.id,"
                             " text: document.activeElement.textContent})")
        page.screenshot(path=str(shots / f"layout-{name}-skip-link.png"))
        page.keyboard.press("Enter")
        figures["skip_link"] = skip["text"]
        figures["skip_link_lands_on"] = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
        landed = page.evaluate("(s) => document.activeElement.matches(s)", RANK_CONTROL)
        # the page scrolls the focused control into view below the video strip, not under it
        figures["focus_below_strip"] = page.evaluate("""() => Math.round(
            document.activeElement.getBoundingClientRect().top
            - document.querySelector('#stage').getBoundingClientRect().bottom)""")
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")

        # -- the videos stay in view while the last criterion is ranked ----------------------------
        page.evaluate("() => document.querySelector('.criterion:last-of-type').scrollIntoView({block: 'end'})")
        page.wait_for_timeout(200)
        geometry = page.evaluate(GEOMETRY)
        page.screenshot(path=str(shots / f"layout-{name}-last-criterion.png"))
        figures["page_distance_videos_to_last_criterion"] = round(geometry["page_distance"])
        figures["scrollY"] = round(geometry["scrollY"])
        figures["media_in_view"] = [in_view(b, geometry["viewport"]) for b in geometry["media"]]
        figures["tiles_in_view"] = all(in_view(b, geometry["viewport"]) for b in geometry["tiles"])
        figures["media_boxes"] = [{k: round(v) for k, v in b.items()} for b in geometry["media"]]
        figures["controls_in_view"] = all(in_view(b, geometry["viewport"]) for b in geometry["controls"])
        figures["controls_covered"] = geometry["covered"]
        (shots / f"layout-{name}.json").write_text(json.dumps(figures, indent=1))
        print(f"layout {name}: {json.dumps(figures)}")
        assert 0 <= caption["gap"] <= 8, caption
        assert caption["centre_offset"] <= 4, caption
        assert caption["caption_width"] <= caption["thumb_width"] + 40, caption
        assert skip["id"] == "skip-link" and landed, figures
        assert not phone or figures["focus_below_strip"] >= 0, figures
        assert outline not in ("none", ""), outline          # the focus is visible
        assert figures["tabs_from_top"] is not None and figures["tabs_from_top"] <= MAX_TABS_FROM_TOP, figures
        assert figures["tabs_from_heading"] is not None, figures
        assert figures["tabs_from_heading"] <= MAX_TABS_FROM_HEADING, figures
        assert all(figures["media_in_view"]) and figures["tiles_in_view"], figures   # with their captions
        assert figures["controls_in_view"] and geometry["covered"] == 0, figures
        # the videos are not shrunk to nothing to get there
        assert min(b["height"] for b in geometry["media"]) >= (64 if phone else 200), figures
        assert errors == []
