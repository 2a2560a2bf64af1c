"""Answers checked against the study they belong to (study.json): a trial, kind, method or criterion
the study does not have for that trial, or a preference outside its scale, is an error naming the
file, the lines and the field, for pairwise answers and rankings alike; nothing is dropped. The
expected messages are written out by hand from the study below."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from userstudy import analyze as analyze_command
from userstudy.pairwise import PairwiseError, check_pairwise, read_pairwise
from userstudy.rankings import RankingsError, check_rankings
from userstudy.study import STUDY_FILE, load_study

QUALITY, SYNC = "visual quality", "sound-video synchronization"
PAIRWISE = ("participant", "trial", "criterion", "method_a", "method_b", "kind", "preference")


def write_study(root: Path) -> Path:
    """Three methods, two criteria, a 3-level scale: r1 ranked, p1 compares imac with mya, m1 is
    imac's matched-speech trial asked on sync only."""
    folder = root / "study"
    folder.mkdir()
    document = {
        "title": "t", "seed": "s", "methods": ["imac", "s2g", "mya"], "criteria": [QUALITY, SYNC],
        "preference_levels": 3,
        "trials": [
            {"id": "r1", "videos": {"imac": "v/a.mp4", "s2g": "v/b.mp4", "mya": "v/c.mp4"}},
            {"id": "p1", "kind": "compare", "videos": {"imac": "v/a.mp4", "mya": "v/c.mp4"}},
            {"id": "m1", "kind": "match", "method": "imac", "criteria": [SYNC],
             "videos": {"matched": "v/a.mp4", "mismatched": "v/d.mp4"}},
        ],
    }
    (folder / STUDY_FILE).write_text(json.dumps(document))
    return folder


def lines(rows, columns=PAIRWISE) -> pd.DataFrame:
    table = pd.DataFrame([dict(zip(columns, row)) for row in rows], dtype=str)
    table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    return table


def test_pairwise_answers_that_do_not_fit_the_study_are_named_by_line_and_field(tmp_path):
    folder = write_study(tmp_path)
    study = load_study(folder, check_files=False)
    path = folder.resolve() / STUDY_FILE
    table = lines([
        ("p", "p1", QUALITY, "imac", "mya", "compare", "1"),       # 2: fine
        ("p", "p1", SYNC, "mya", "imac", "compare", "-1"),         # 3: fine, the pair written the other way
        ("p", "zz", QUALITY, "imac", "mya", "compare", "1"),       # 4: no such trial
        ("p", "p1", QUALITY, "imac", "foo", "compare", "1"),       # 5: no such method
        ("p", "p1", "smell", "imac", "mya", "compare", "0"),       # 6: a criterion p1 does not ask
        ("q", "p1", SYNC, "imac", "mya", "compare", "2"),          # 7: outside the 3-level scale
        ("q", "r1", SYNC, "imac", "mya", "compare", "1"),          # 8: a ranking trial
        ("q", "m1", QUALITY, "imac", "imac", "match", "1"),        # 9: m1 asks sync only
        ("q", "p1", QUALITY, "imac", "s2g", "compare", "1"),       # 10: not p1's pair
        ("r", "p1", QUALITY, "imac", "mya", "compare", "-2"),      # 11: outside the scale, like 7
    ])
    with pytest.raises(PairwiseError) as error:
        check_pairwise(table, source="answers.csv", study=study)
    assert error.value.problems == [
        f"line 4: trial 'zz' is not a trial of {path}",
        f"line 5: method_b 'foo' is not a method of {path} (imac, s2g, mya)",
        f"line 6: criterion 'smell' is not asked by trial 'p1' in {path} (it asks: {QUALITY}, {SYNC})",
        f"line 7: preference 2 is outside the scale of {path} (3 levels: -1, 0, 1)",
        f"line 8: trial 'r1' is a ranking trial of {path}, not a pairwise one",
        f"line 9: criterion '{QUALITY}' is not asked by trial 'm1' in {path} (it asks: {SYNC})",
        f"line 10: method_a, method_b 'imac', 's2g' are not the methods of trial 'p1' in {path} ('imac', 'mya')",
        f"line 11: preference -2 is outside the scale of {path} (3 levels: -1, 0, 1)",
    ]
    assert str(error.value).startswith("answers.csv: 8 problems in the pairwise answers:\n")
    # without the study the same rows are only checked for their own form (-2..2, two methods)
    assert len(check_pairwise(table)) == 10
    # the fitting rows pass, with the pair in either order
    assert list(check_pairwise(table.loc[[2, 3]], study=study)["preference"]) == [1, -1]


def test_a_kind_other_than_the_trials_is_named(tmp_path):
    study = load_study(write_study(tmp_path), check_files=False)
    path = study.root / STUDY_FILE
    table = lines([("p", "p1", SYNC, "imac", "imac", "match", "1")])
    with pytest.raises(PairwiseError) as error:
        check_pairwise(table, source="answers.csv", study=study)
    assert error.value.problems == [
        f"line 2: kind 'match' is not that of trial 'p1', a 'compare' trial of {path}",
        f"line 2: method_a, method_b 'imac', 'imac' are not the methods of trial 'p1' in {path} ('imac', 'mya')",
    ]


def test_rankings_that_do_not_fit_the_study_are_named_by_line_and_field(tmp_path):
    study = load_study(write_study(tmp_path), check_files=False)
    path = study.root / STUDY_FILE
    columns = ("participant", "trial", "criterion", "method", "rank")
    good = [("p", "r1", QUALITY, m, str(r)) for r, m in enumerate(["imac", "s2g", "mya"], start=1)]
    table = lines(good + [("p", "r9", QUALITY, "imac", "1"), ("p", "r9", QUALITY, "s2g", "2"),    # 5, 6
                          ("p", "r9", QUALITY, "mya", "3"),                                        # 7
                          ("p", "r1", "smell", "imac", "1"), ("p", "r1", "smell", "s2g", "2"),    # 8, 9
                          ("p", "r1", "smell", "mya", "3"),                                        # 10
                          ("q", "r1", QUALITY, "imac", "1"), ("q", "r1", QUALITY, "s2g", "2"),    # 11, 12
                          ("q", "r1", QUALITY, "imca", "3"),                                       # 13
                          ("q", "p1", SYNC, "imac", "1"), ("q", "p1", SYNC, "mya", "2")],          # 14, 15
                  columns=columns)
    with pytest.raises(RankingsError) as error:
        check_rankings(table, source="rankings.csv", study=study)
    problems = error.value.problems
    assert f"lines 5, 6, 7: trial 'r9' is not a trial of {path}" in problems
    assert f"lines 8, 9, 10: criterion 'smell' is not a criterion of {path} ({QUALITY}, {SYNC})" in problems
    assert f"line 13: method 'imca' is not a method of {path} (imac, s2g, mya)" in problems
    assert (f"lines 14, 15: trial 'p1' is a pairwise (compare) trial of {path}: it is answered with preferences "
            "(pairwise.csv), not ranked") in problems
    assert len(check_rankings(table.loc[[2, 3, 4]], study=study).data) == 3


def test_the_command_refuses_them_and_no_study_turns_the_check_off(tmp_path, capsys):
    folder = write_study(tmp_path)
    answers = folder / "pairwise.csv"
    pd.DataFrame([{"participant": "p", "trial": "p1", "criterion": QUALITY, "method_a": "imac",
                   "method_b": "mya", "kind": "compare", "preference": "2"}]).to_csv(answers, index=False)
    assert analyze_command.main([str(answers), "--out", str(tmp_path / "out"), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    # one problem: one line, the command, the file, the line and the field
    assert err == (f"python -m userstudy.analyze: error: {answers}: line 2: preference 2 is outside the scale of "
                   f"{folder.resolve() / STUDY_FILE} (3 levels: -1, 0, 1)\n")
    assert not (tmp_path / "out").exists()
    # --study names the study by its study.json as well as by its folder
    code = analyze_command.main([str(answers), "--out", str(tmp_path / "out"), "--study",
                                 str(folder / STUDY_FILE), "--bootstrap", "0"])
    assert code == 2 and "outside the scale" in capsys.readouterr().err
    assert analyze_command.main([str(answers), "--out", str(tmp_path / "out"), "--no-study", "--bootstrap", "0"]) == 0
    with pytest.raises(PairwiseError):
        read_pairwise(answers, load_study(folder / STUDY_FILE, check_files=False))
