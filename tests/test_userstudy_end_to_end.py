"""The whole user study in a real headless browser: a study made from a fake benchmark run folder in
the documented layout (``<run>/run.json``, ``<run>/<method>/<identity>/<clip>.mp4``: short H.264
videos written here, and the run's ``results.json``), with one attention check (the run's frozen
``static`` video) and a pairwise block. A participant arrives by a platform's link, agrees to the
consent text, plays each trial's videos through (the answers are locked until then), ranks, answers
the pairwise trials and gets the completion code; two more participants answer over HTTP, one of
them failing the check. ``analyze`` then reports the exclusion, Bradley-Terry with intervals, the
paper's tables and the metric-human agreement.

Screenshots go to ``$USERSTUDY_SCREENSHOTS`` (default: ``screenshots/`` in the test's temporary
folder); their paths are printed (``pytest -s``) and listed in ``screenshots.txt`` there.
Needs Debian's chromium and the ``playwright`` package (``executable_path``), as
test_userstudy_browser.py; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from userstudy_data.browser import chromium_page, served, skip_unless_chromium
from userstudy_data.helpers import get_plan, post_json
from userstudy_data.media import write_video

from userstudy import analyze
from userstudy.make_study import make_study_from_run
from userstudy.study import load_study, planned_trial

av = pytest.importorskip("av", reason="PyAV writes the test's videos")
skip_unless_chromium()
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"

METHODS = ["imac", "s2g", "mya"]
CONTROLS = ["gt", "static", "shuffled"]
IDENTITIES = {"ana": ["c01", "c02"], "ben": ["c01", "c02"]}
QUALITY, SYNC = "visual quality", "sound-video synchronization"
CONSENT = "This study shows short generated videos.\nTaking part is voluntary; answers are anonymous."
CODE = "C7XQ2P"


def fake_run(root: Path) -> Path:
    """A benchmark run folder in the documented layout, with its results file."""
    run = root / "runs" / "bench"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"methods": METHODS + CONTROLS, "seed": 0, "bench_version": 2}))
    for m, method in enumerate(METHODS + CONTROLS):
        for identity, clips in IDENTITIES.items():
            for c, clip in enumerate(clips):   # each clip has its own speech (tone)
                write_video(run / method / identity / f"{clip}.mp4", 40 + 40 * m, 220 * (c + 1) * (1 + (identity == "ben")),
                            frozen=method == "static")
    fgd = {"imac": 900.0, "s2g": 2500.0, "mya": 1600.0}
    bas = {"imac": 0.61, "s2g": 0.52, "mya": 0.55}
    scores = {m: {"name": m, "scores": {scope: {"fgd": {"value": fgd[m] * f}, "bas": {"value": bas[m]}}
                                        for scope, f in (("all", 1.0), ("identity:ana", 0.9), ("identity:ben", 1.1))}}
              for m in METHODS}
    (run / "results.json").write_text(json.dumps({"schema": "imac-bench-results", "schema_version": 2,
                                                  "metrics": ["fgd", "bas"], "labels": {"fgd": "FGD", "bas": "BAS"},
                                                  "methods": scores}))
    return run


class Screenshots:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        print(f"screenshot: {path}")
        (self.folder / "screenshots.txt").write_text("".join(f"{p}\n" for p in self.taken))


def wanted_ranking(study, participant: str, trial_id: str, criterion: str, fail_check: bool = False) -> list[str]:
    """The blinded ids in the order this test ranks them: imac > mya > s2g, the frozen video of a
    check last on its criterion (first, when the participant is to fail it)."""
    planned = planned_trial(study, participant, trial_id)
    preference = {"imac": 0, "mya": 1, "s2g": 2}
    slots = sorted((slot for _, slot in planned.shown), key=preference.get)
    check = planned.trial.check
    if check is not None and check.kind == "last" and criterion in (check.criteria or (QUALITY, SYNC)):
        slots.remove(check.method)
        slots = [check.method] + slots if fail_check else slots + [check.method]
    return [planned.blind_id_of(slot) for slot in slots]


def left_preference(study, participant: str, trial_id: str) -> int:
    """This test prefers imac, then mya, then s2g, and the video with the right speech: +1 when the
    left video is the one it prefers."""
    planned = planned_trial(study, participant, trial_id)
    order = ["matched", "imac", "mya", "s2g", "mismatched"]
    left, right = (slot for _, slot in planned.shown)
    return 1 if order.index(left) < order.index(right) else -1


def answer_by_http(port: int, study, participant: str, fail_check: bool) -> None:
    status, reply = post_json(port, "/api/participants", {"participant": participant, "consent": True})
    assert status == 201, reply
    token = reply["token"]
    _, plan = get_plan(port, participant, token)
    for trial in plan["trials"]:
        body = {"participant": participant, "token": token, "trial": trial["trial"]}
        if trial["kind"] == "pairwise":
            value = left_preference(study, participant, trial["trial"])
            body["preferences"] = {c: value for c in trial["criteria"]}
        else:
            body["rankings"] = {c: wanted_ranking(study, participant, trial["trial"], c, fail_check)
                                for c in trial["criteria"]}
        status, reply = post_json(port, "/api/submit", body)
        assert status == 200, reply
    assert reply["complete"] and reply["completion"]["code"] == CODE


def test_a_study_from_a_run_end_to_end(tmp_path, capsys):
    run = fake_run(tmp_path)
    study_dir = tmp_path / "study"
    make_study_from_run(study_dir, run, trials_per_identity=1, frozen_checks=1, pairwise_trials=2, match_trials=1,
                        criteria=[QUALITY, SYNC], consent=CONSENT, completion_code=CODE,
                        completion_url="https://app.example.org/complete?cc=" + CODE, seed="e2e")
    study = load_study(study_dir)
    assert study.play_through and (study_dir / "results.json").is_file()
    assert sum(t.check is not None for t in study.trials) == 1 and sum(t.pairwise for t in study.trials) == 3
    match = next(t for t in study.trials if t.kind == "match")
    assert match.criteria == (SYNC,) and "speech-under" in match.videos["mismatched"]
    shots = Screenshots(Path(os.environ.get("USERSTUDY_SCREENSHOTS") or tmp_path / "screenshots"))

    participant = "prolific01"
    ranked: dict[str, dict[str, list[str]]] = {}
    preferred: dict[str, int] = {}
    with served(study_dir) as server:
        port = server.server_address[1]
        with chromium_page(tmp_path / "chromium-profile", extra_flags=[AUTOPLAY], default_timeout_ms=15_000,
                           viewport={"width": 1100, "height": 1300}) as (page, errors):
            # -- a platform's link, the consent text ----------------------------------------------
            page.goto(f"{server.url}?PROLIFIC_PID={participant}")
            page.wait_for_selector("#consent:not([hidden])")
            assert "answers are anonymous" in page.text_content("#consent-text")
            assert "in 3, say which of two videos is better" in page.text_content("#instructions")
            assert page.is_disabled("#start-new")
            shots.take(page, "consent")
            page.check("#consent-agree")
            page.click("#start-new")
            page.wait_for_selector("#study:not([hidden])")
            assert page.text_content("#participant-id") == participant
            assert list(server.store.consents()) == [participant]

            # -- every trial: locked until played through, then answered and saved -----------------
            for index in range(len(study.trials)):
                trial_id = page.eval_on_selector('#trial-nav [aria-current="step"]', "(b) => b.dataset.trial")
                trial = study.trial(trial_id)
                page.wait_for_selector("#lock:not([hidden])")
                assert page.is_disabled("#save")
                assert page.eval_on_selector_all(".criterion", "(f) => f.every((x) => x.disabled)")
                if index == 0:
                    shots.take(page, "locked-until-played")
                page.click("#play-all")
                page.wait_for_selector("#lock", state="hidden")
                assert not page.is_disabled("#save")
                if trial.pairwise:
                    value = left_preference(study, participant, trial_id)
                    for criterion in study.criteria_of(trial):
                        page.locator(f'.criterion[data-criterion="{criterion}"] input[value="{value}"]').check()
                    preferred[trial_id] = value
                    if len(preferred) == 1:
                        shots.take(page, "pairwise-trial")
                else:
                    ranked[trial_id] = {}
                    for criterion in study.criteria_of(trial):
                        order = wanted_ranking(study, participant, trial_id, criterion)
                        box = page.locator(f'.criterion[data-criterion="{criterion}"]')
                        for video in order:   # 'Rank next' in the wanted order
                            box.locator(f'.pool .chip[data-id="{video}"] button.place').click()
                        ranked[trial_id][criterion] = order
                    if trial.check is not None:
                        shots.take(page, "attention-check-ranked")
                page.click("#save")
                page.wait_for_selector("#final:not([hidden])")
                if index < len(study.trials) - 1:
                    page.click("#next")
            page.wait_for_selector("#completion:not([hidden])")
            assert page.text_content("#completion-code") == CODE
            assert page.get_attribute("#completion-link", "href").endswith(CODE)
            shots.take(page, "completion-code")
            assert errors == []

        # -- two more participants over HTTP: one attentive, one who ranks the frozen video first --
        answer_by_http(port, study, "prolific02", fail_check=False)
        answer_by_http(port, study, "prolific03", fail_check=True)

    # -- what the browser saved is what was clicked, un-blinded ----------------------------------------
    rankings = pd.read_csv(study_dir / "rankings.csv", dtype=str)
    mine = rankings[rankings["participant"] == participant]
    for trial_id, by_criterion in ranked.items():
        planned = planned_trial(study, participant, trial_id)
        for criterion, order in by_criterion.items():
            rows = mine[(mine["trial"] == trial_id) & (mine["criterion"] == criterion)].sort_values("rank")
            assert rows["method"].tolist() == [planned.method_of(b) for b in order]
    pairwise = pd.read_csv(study_dir / "pairwise.csv", dtype=str)
    for row in pairwise[pairwise["participant"] == participant].itertuples():
        sign = 1 if row.a_position == "1" else -1
        assert int(row.preference) == sign * preferred[row.trial]
        if row.kind == "match":    # video a is the matched one, which the test always picks
            assert int(row.preference) == 1 and row.method_a == row.method_b
        else:
            assert int(row.preference) == (1 if ["imac", "mya", "s2g"].index(row.method_a) <
                                           ["imac", "mya", "s2g"].index(row.method_b) else -1)

    # -- the analysis: exclusions, Bradley-Terry with intervals, the paper's tables, the agreement --------
    out = tmp_path / "analysis"
    assert analyze.main([str(study_dir / "rankings.csv"), "--out", str(out), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "1 participant excluded: prolific03" in printed
    report = (out / "report.md").read_text()
    assert "## Attention checks and exclusions" in report and "**excluded: 1**" in report
    assert "| prolific03 |" in report
    for section in ("## Mean points (the paper's Tables 4/5)", "## Kruskal-Wallis test per criterion (the paper's "
                    "Tables 6/7)", "## Dunn's pairwise test (the paper's Figures 8/9)", "## Friedman test",
                    "## Pairwise trials", "### Bradley-Terry ratings", "## Agreement of the metrics"):
        assert section in report, section
    points = pd.read_csv(out / "points.csv", index_col=0)
    assert points.loc["imac", QUALITY] == 3.0 and points.loc["s2g", QUALITY] == 1.0   # everyone ranked alike
    strengths = pd.read_csv(out / "bradley_terry.csv")
    assert np.isfinite(strengths[["elo", "elo_low", "elo_high"]].to_numpy()).all()
    assert (strengths["elo_low"] <= strengths["elo"]).all() and (strengths["elo"] <= strengths["elo_high"]).all()
    assert set(pd.read_csv(out / "exclusions.csv").query("excluded")["participant"]) == {"prolific03"}
    speech = pd.read_csv(out / "speech_match.csv")
    assert speech[["answers", "picked_matched"]].values.tolist() == [[2, 2]]   # prolific03 excluded
    assert "### Matched versus mismatched speech" in report
    agreement = pd.read_csv(out / "agreement.csv")
    # FGD orders imac < mya < s2g (lower is better) as the participants do: tau = 1 on the 'all' scope
    assert agreement.query("scope == 'all' and metric == 'fgd'")["tau"].tolist() == [1.0, 1.0]
    for name in ("dunn.png", "nemenyi.png"):
        shutil.copyfile(out / name, shots.folder / name)
    print(f"analysis: {out / 'report.md'}; figures copied to {shots.folder}")
    assert len(shots.taken) == 5
