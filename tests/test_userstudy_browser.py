"""End to end in a real headless browser: a participant ranks a study by mouse drag, by keyboard and
by touch, saves, comes back, and the answers in rankings.csv are exactly what was ranked; then
``analyze`` runs on that file.

Needs Debian's chromium (/usr/bin/chromium) and the ``playwright`` Python package, driven with
``executable_path`` (``playwright install`` is never needed); skipped with the reason otherwise.
"""

from __future__ import annotations

import pandas as pd
import pytest
from userstudy_data.browser import chromium_page, served, skip_unless_chromium
from userstudy_data.helpers import CRITERIA, make_study

from userstudy import analyze
from userstudy.study import load_study, participant_plan

skip_unless_chromium()


@pytest.fixture
def browser_page(tmp_path):
    study_dir = make_study(tmp_path, trials=3)
    profile = tmp_path / "chromium-profile"  # a fresh --user-data-dir for every run
    with served(study_dir) as server, chromium_page(
            profile, has_touch=True, viewport={"width": 1100, "height": 1400}) as (page, errors):
        yield page, server, study_dir, errors


def box(page, criterion: str):
    return page.locator(f'.criterion[data-criterion="{criterion}"]')


def order(page, criterion: str) -> list[str | None]:
    """The ranking shown for a criterion: the video id in each rank slot, best first."""
    return page.evaluate("""(criterion) => Array.from(
        document.querySelectorAll(`.criterion[data-criterion="${criterion}"] .slot`),
        (slot) => { const chip = slot.querySelector('.chip'); return chip ? chip.dataset.id : null; })""",
                         criterion)


def video_ids(page) -> list[str]:
    return page.eval_on_selector_all("#videos figure", "(figures) => figures.map((f) => f.dataset.id)")


def announced(page, text: str) -> None:
    page.wait_for_function("(text) => document.querySelector('#announcer').textContent.includes(text)", arg=text)


def drag(page, criterion: str, video: str, rank: int) -> None:
    """A mouse drag from the video's chip to a rank slot, in several moves like a hand."""
    source = box(page, criterion).locator(f'.chip[data-id="{video}"] .chip-id')
    target = box(page, criterion).locator(f'.slot[data-rank="{rank}"]')
    source.drag_to(target, steps=8)


def touch_drag(page, client, criterion: str, video: str, rank: int) -> None:
    """A finger drag, as touch events (Chromium turns them into pointer events of type touch)."""
    source = box(page, criterion).locator(f'.chip[data-id="{video}"] .chip-id')
    source.scroll_into_view_if_needed()
    start = source.bounding_box()
    end = box(page, criterion).locator(f'.slot[data-rank="{rank}"]').bounding_box()
    x0, y0 = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    x1, y1 = end["x"] + end["width"] / 2, end["y"] + end["height"] / 2
    client.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for i in range(1, 9):
        x, y = x0 + (x1 - x0) * i / 8, y0 + (y1 - y0) * i / 8
        client.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    client.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def rank_by_keyboard(page, criterion: str) -> None:
    """Enter on 'Rank next' places a video and moves the focus to the next unranked one."""
    box(page, criterion).locator(".pool .chip button.place").first.focus()
    for _ in range(len(video_ids(page))):
        page.keyboard.press("Enter")


def test_rank_save_come_back_and_analyse(browser_page, tmp_path):
    page, server, study_dir, errors = browser_page
    page.goto(server.url)
    page.click("#start-new")
    page.wait_for_selector("#study:not([hidden])")
    participant = page.text_content("#participant-id")
    expected: dict[str, dict[str, list[str]]] = {}

    # -- trial 1: the first criterion by mouse drag, the second by keyboard --------------------------
    first, second = CRITERIA
    trial = page.eval_on_selector('#trial-nav [aria-current="step"]', "(b) => b.dataset.trial")
    x, y, z = video_ids(page)
    drag(page, first, x, 1)
    drag(page, first, y, 3)
    drag(page, first, z, 2)
    assert order(page, first) == [x, z, y]
    drag(page, first, z, 1)                      # onto a taken rank: the two swap
    assert order(page, first) == [z, x, y]
    announced(page, f"Video {z} placed at rank 1 of 3. Video {x} moves to rank 2.")
    box(page, first).locator(f'.chip[data-id="{y}"] .chip-id').dblclick()   # double-click undoes
    assert order(page, first) == [z, x, None]
    announced(page, f"Video {y} taken back from rank 3.")
    drag(page, first, y, 3)
    assert order(page, first) == [z, x, y]

    # saving with the second criterion unranked: refused, that criterion in red
    page.click("#save")
    assert "unranked" in box(page, second).get_attribute("class")
    assert "unranked" not in box(page, first).get_attribute("class")
    assert "not ranked yet" in page.text_content("#status")
    assert page.locator("#final").is_hidden()

    rank_by_keyboard(page, second)
    assert order(page, second) == [x, y, z]
    box(page, second).locator(f'.chip[data-id="{x}"] button.down').focus()
    page.keyboard.press("Enter")                 # move down, by keyboard
    announced(page, f"Video {x} moved down to rank 2 of 3. Video {y} moves to rank 1.")
    page.keyboard.press(" ")                     # focus stayed on the same button: again, with Space
    assert order(page, second) == [y, z, x]
    # at the bottom "down" is disabled: the focus stays on the same video, on its "up" button
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == f"Move video {x} up on {second}"
    assert "unranked" not in box(page, second).get_attribute("class")
    expected[trial] = {first: order(page, first), second: order(page, second)}

    page.click("#save")
    page.wait_for_selector("#final:not([hidden])")
    final = page.text_content("#final-body")
    assert f"{first}: 1. Video {z}" in final and f"{second}: 1. Video {y}" in final
    assert page.locator(f'#trial-nav [data-trial="{trial}"]').get_attribute("class").endswith("saved")

    # -- come back later: same participant, the saved trial is kept -----------------------------------
    page.goto(f"{server.url}?participant={participant}")
    page.wait_for_selector("#study:not([hidden])")
    assert page.locator(f'#trial-nav [data-trial="{trial}"]').get_attribute("class").endswith("saved")
    current = page.eval_on_selector('#trial-nav [aria-current="step"]', "(b) => b.dataset.trial")
    assert current != trial                      # it opens on the first unsaved trial

    # -- trial 2 by keyboard only; trial 3 by touch and keyboard --------------------------------------
    for step in range(2):
        trial = page.eval_on_selector('#trial-nav [aria-current="step"]', "(b) => b.dataset.trial")
        if step == 0:
            for criterion in CRITERIA:
                rank_by_keyboard(page, criterion)
        else:
            client = page.context.new_cdp_session(page)
            ids = video_ids(page)
            touch_drag(page, client, first, ids[2], 1)
            touch_drag(page, client, first, ids[0], 2)
            touch_drag(page, client, first, ids[1], 3)
            assert order(page, first) == [ids[2], ids[0], ids[1]]
            rank_by_keyboard(page, second)
        expected[trial] = {c: order(page, c) for c in CRITERIA}
        page.locator("#save").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#final:not([hidden])")
        if step == 0:
            page.click("#next")
    page.wait_for_selector("#done:not([hidden])")
    assert errors == []

    # -- the CSV holds exactly these answers, un-blinded ----------------------------------------------
    table = pd.read_csv(study_dir / "rankings.csv", dtype={"participant": str, "trial": str})
    assert len(table) == 3 * len(CRITERIA) * 3 and set(table["participant"]) == {participant}
    plan = {p.trial.id: p for p in participant_plan(load_study(study_dir), participant)}
    for trial, rankings in expected.items():
        for criterion, ids in rankings.items():
            rows = table[(table["trial"] == trial) & (table["criterion"] == criterion)].sort_values("rank")
            assert rows["method"].tolist() == [plan[trial].method_of(i) for i in ids]
            assert rows["position"].tolist() == [plan[trial].position_of(m) for m in rows["method"]]

    out = tmp_path / "analysis"
    assert analyze.main([str(study_dir / "rankings.csv"), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "participants: **1**; trials: **3**" in report and "Blocks dropped: none." in report


def test_platform_link_resume_code_unknown_id_and_video_report(browser_page):
    """A participant arrives by a crowdsourcing platform's link (?PROLIFIC_PID=...), reports a video that
    does not play, and comes back from another browser with the resume code; a mistyped id is told
    apart from a new participant; knowing the id alone is not enough."""
    page, server, _, errors = browser_page
    page.goto(f"{server.url}?PROLIFIC_PID=prolific42")
    page.wait_for_selector("#study:not([hidden])")
    assert page.text_content("#participant-id") == "prolific42"
    code = page.text_content("#resume-code")
    assert server.store.participant("prolific42").token_sha256 is not None and len(code) == 14

    page.locator("#videos figure").first.locator("button.report").click()
    page.wait_for_function("() => document.querySelector('#videos button.report').disabled")
    assert [r[0] for r in server.store.video_reports()] == ["prolific42"]

    # as if from another browser: nothing of the participant is kept in this one
    page.evaluate("() => localStorage.clear()")
    page.goto(server.url)
    page.fill("#resume-id", "prolific43")                      # a typo
    page.click("#resume-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#welcome-error').textContent.includes('no participant')")
    assert page.locator("#study").is_hidden()
    page.fill("#resume-id", "prolific42")                      # the right id, no code: refused
    page.click("#resume-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#welcome-error').textContent.includes('resume code')")
    assert page.locator("#study").is_hidden()
    page.fill("#resume-token", code.lower())                   # as a person may type it
    page.click("#resume-form button[type=submit]")
    page.wait_for_selector("#study:not([hidden])")
    assert page.text_content("#participant-id") == "prolific42"
    assert errors == []


def test_the_start_buttons_wait_for_the_study(tmp_path):
    """Until /api/study has answered, the page has no handlers: "Start" and "Continue" are disabled then
    (a click was lost, and the resume form was sent as a plain GET of the page); they work once it has."""
    study_dir = make_study(tmp_path, trials=1)
    held = []
    with served(study_dir) as server, chromium_page(tmp_path / "chromium-profile") as (page, errors):
        page.route("**/api/study", lambda route: held.append(route))   # the study's answer waits
        page.goto(server.url)
        while not held:
            page.wait_for_timeout(20)
        assert page.is_disabled("#start-new") and page.is_disabled("#resume-form button[type=submit]")
        page.fill("#resume-id", "someone")
        page.press("#resume-id", "Enter")                        # no implicit submission either
        page.wait_for_timeout(200)
        assert page.url == server.url
        held[0].continue_()
        page.click("#start-new")                                 # waits for the button to be enabled
        page.wait_for_selector("#study:not([hidden])")
        assert not page.is_disabled("#resume-form button[type=submit]") and errors == []


def test_videos_that_do_not_play_never_lock_a_participant_out(tmp_path):
    """With the play-through lock on and videos that cannot play (these test files are not video),
    the trial stays locked until each video is reported as not playing; then it can be answered."""
    study_dir = make_study(tmp_path, trials=1, play_through=True)
    with served(study_dir) as server, chromium_page(
            tmp_path / "chromium-profile", viewport={"width": 1100, "height": 1400}) as (page, _):
        page.goto(server.url)
        page.click("#start-new")
        page.wait_for_selector("#lock:not([hidden])")
        assert page.is_disabled("#save")
        reports = page.locator("#videos button.report")
        for i in range(reports.count() - 1):
            reports.nth(i).click()
            page.wait_for_function("(i) => document.querySelectorAll('#videos button.report')[i].disabled", arg=i)
        assert page.is_visible("#lock") and "2 of 3 played" in page.text_content("#lock")
        reports.nth(reports.count() - 1).click()
        page.wait_for_selector("#lock", state="hidden")
        rank_by_keyboard(page, CRITERIA[0])
        rank_by_keyboard(page, CRITERIA[1])
        page.click("#save")
        page.wait_for_selector("#final:not([hidden])")
        assert len(server.store.video_reports()) == 3
