"""Checking ranking data: each kind of bad input is refused with what was wrong and the file's lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from userstudy.rankings import RankingsError, check_rankings, load_rankings, read_rankings

METHODS = ["a", "b", "c"]


def valid_rows() -> list[dict]:
    """2 participants x 2 trials x 2 criteria x 3 methods; file lines 2..25 in this order."""
    rows = []
    for participant in ["p1", "p2"]:
        for trial in ["t1", "t2"]:
            for criterion in ["visual quality", "temporal consistency"]:
                for rank, method in enumerate(METHODS, start=1):
                    rows.append({"participant": participant, "trial": trial, "criterion": criterion,
                                 "method": method, "rank": str(rank)})
    return rows


def write(tmp_path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    path = tmp_path / "rankings.csv"
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def problems_of(tmp_path: Path, rows: list[dict], **options) -> list[str]:
    with pytest.raises(RankingsError) as error:
        load_rankings(write(tmp_path, rows), **options)
    assert str(tmp_path / "rankings.csv") in str(error.value)
    return error.value.problems


def test_valid_rankings_pass_with_points(tmp_path):
    checked = load_rankings(write(tmp_path, valid_rows()))
    assert len(checked.data) == 24 and checked.blocks() == 8
    assert checked.criteria == ["visual quality", "temporal consistency"]  # the paper's order
    assert checked.methods == {"visual quality": METHODS, "temporal consistency": METHODS}
    assert checked.data.index[0] == 2  # file line numbers
    first = checked.data.iloc[:3]
    assert list(first["points"]) == [3, 2, 1]  # rank 1 of 3 -> 3 points
    assert checked.dropped_blocks.empty and checked.superseded.empty


def test_missing_columns(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "rank"} for r in valid_rows()]
    (problem,) = problems_of(tmp_path, rows)
    assert "missing column(s) rank" in problem and "participant, trial, criterion, method" in problem


def test_empty_file_and_header_only(tmp_path):
    path = tmp_path / "rankings.csv"
    path.write_text("")
    with pytest.raises(RankingsError, match="empty"):
        load_rankings(path)
    path.write_text("participant,trial,criterion,method,rank\n")
    with pytest.raises(RankingsError, match="no rows"):
        load_rankings(path)


def test_non_numeric_and_fractional_ranks(tmp_path):
    rows = valid_rows()
    rows[3]["rank"] = "first"      # line 5
    rows[10]["rank"] = ""          # line 12
    rows[20]["rank"] = "1.5"       # line 22
    problems = problems_of(tmp_path, rows)
    assert any("lines 5, 12: rank is not a number" in p and "'first'" in p for p in problems)
    assert "lines 5, 12: rank is not a number (found 'first' on line 5, '' on line 12)" in problems  # paired
    assert any("line 22: rank is not a whole number" in p and "'1.5'" in p for p in problems)


def test_rank_outside_one_to_k(tmp_path):
    rows = valid_rows()
    rows[2]["rank"] = "4"   # line 4: participant p1, trial t1, visual quality, method c
    rows[5]["rank"] = "0"   # line 7
    problems = problems_of(tmp_path, rows)
    assert any(p.startswith("line 4:") and "rank 4 is outside 1..3" in p and "'visual quality'" in p
               for p in problems)
    assert any(p.startswith("line 7:") and "rank 0 is outside 1..3" in p for p in problems)


def test_duplicate_rank_in_a_block(tmp_path):
    rows = valid_rows()
    rows[1]["rank"] = "1"   # line 3 repeats rank 1 of line 2
    problems = problems_of(tmp_path, rows)
    assert any(p.startswith("lines 2, 3:") and "rank 1 is given 2 times" in p and "'p1'" in p and "'t1'" in p
               for p in problems)


def test_method_ranked_twice_in_a_block(tmp_path):
    rows = valid_rows()
    rows[2]["method"] = "a"   # line 4 ranks a again (and c is missing)
    problems = problems_of(tmp_path, rows)
    assert any(p.startswith("lines 2, 4:") and "method 'a' is ranked 2 times" in p for p in problems)
    assert any("incomplete block, no rank for 'c'" in p for p in problems)


def test_incomplete_block_is_an_error_and_can_be_dropped_with_a_record(tmp_path):
    rows = valid_rows()
    del rows[12]              # p2, t1, visual quality, method a
    rows[12]["rank"] = "1"    # b and c, now lines 14 and 15, ranked 1, 2: only completeness is wrong
    rows[13]["rank"] = "2"
    problems = problems_of(tmp_path, rows)
    assert problems == ["lines 14, 15: participant 'p2', trial 't1', criterion 'visual quality': incomplete "
                        "block, no rank for 'a' (of the criterion's 3 methods); use drop_incomplete / "
                        "--drop-incomplete to set such blocks aside"]
    checked = load_rankings(tmp_path / "rankings.csv", drop_incomplete=True)
    assert checked.blocks() == 7 and len(checked.data) == 21
    assert checked.dropped_blocks.to_dict("records") == [{
        "participant": "p2", "trial": "t1", "criterion": "visual quality",
        "reason": "incomplete: no rank for a", "lines": "lines 14, 15"}]


def test_criterion_with_a_single_method(tmp_path):
    rows = valid_rows() + [{"participant": "p1", "trial": "t1", "criterion": "sound-video synchronization",
                            "method": "a", "rank": "1"}]
    problems = problems_of(tmp_path, rows)
    assert problems == ["line 26: criterion 'sound-video synchronization' has a single method ('a'); a "
                        "ranking needs at least two methods"]


def test_empty_fields_and_blank_lines_are_reported_not_skipped(tmp_path):
    path = write(tmp_path, valid_rows())
    lines = path.read_text().splitlines()
    lines.insert(5, "")                                   # a blank line 6
    lines[9] = lines[9].replace("p1,", ",", 1)           # line 10: no participant
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RankingsError) as error:
        load_rankings(path)
    assert "line 6: empty line" in error.value.problems
    assert "line 10: participant is empty" in error.value.problems


def test_every_problem_is_reported_at_once(tmp_path):
    rows = valid_rows()
    rows[0]["rank"] = "x"
    rows[7]["rank"] = "9"
    rows[20]["method"] = "a"
    problems = problems_of(tmp_path, rows)
    assert len(problems) >= 3
    assert str(RankingsError(problems)).startswith(f"{len(problems)} problems in the rankings:\n  - ")
    # a single problem is one line, after the file it is in
    assert str(RankingsError(problems[:1], "r.csv")) == f"r.csv: {problems[0]}"


def test_ragged_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "rankings.csv"
    path.write_text("participant,trial,criterion,method,rank\np1,t1,q,a,1\np1,t1,q,b,2,extra,more\n")
    with pytest.raises(RankingsError, match="not a readable CSV"):
        load_rankings(path)


def test_extra_fields_on_the_first_line_are_named_like_on_any_other(tmp_path):
    # pandas took line 2's extra field for an index: every column shifted by one
    path = write(tmp_path, valid_rows())
    lines = path.read_text().splitlines()
    lines[1] += ",x"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RankingsError) as error:
        load_rankings(path)
    assert error.value.problems == ["not a readable CSV file: line 2 has 6 fields, the header 5 (a field that holds "
                                    "a comma needs double quotes)"]


def test_positions_must_be_each_shown_place_once(tmp_path):
    rows = [dict(r, position=r["rank"]) for r in valid_rows()]
    rows[0]["position"] = "99"                         # line 2: no such place among 3 videos
    rows[4]["position"] = rows[3]["position"]          # lines 5, 6: two videos in one place
    problems = problems_of(tmp_path, rows)
    assert any(p.startswith("line 2:") and "position 99 is outside 1..3" in p for p in problems)
    assert any(p.startswith("lines 5, 6:") and "position 1 is given 2 times in the block" in p for p in problems)
    assert len(problems) == 2


def test_an_empty_submission_or_time_is_an_empty_field(tmp_path):
    rows = [dict(r, submission="s1", submitted_at="2025-01-01T10:00:00Z") for r in valid_rows()]
    rows[2]["submitted_at"] = ""                       # line 4
    rows[6]["submission"] = " "                        # line 8
    problems = problems_of(tmp_path, rows)   # (their blocks, missing those rows, are then incomplete)
    assert problems[:2] == ["line 8: submission is empty", "line 4: submitted_at is empty"]


def test_in_memory_tables_report_row_labels():
    table = pd.DataFrame(valid_rows())
    table.loc[3, "rank"] = None
    with pytest.raises(RankingsError) as error:
        check_rankings(table)
    assert any(p.startswith("row 3: rank is not a number") for p in error.value.problems)


def test_resubmission_keeps_the_latest_save_and_lists_the_replaced_one(tmp_path):
    rows = [dict(r, submission="s-first", submitted_at="2025-01-01T10:00:00Z") for r in valid_rows()]
    # p1 saves trial t1 again (both criteria) with another order: the later save counts
    again = [dict(r, submission="s-again", submitted_at="2025-01-01T11:00:00Z") for r in valid_rows()[:6]]
    for row in again:
        row["rank"] = {"a": "3", "b": "2", "c": "1"}[row["method"]]
    checked = load_rankings(write(tmp_path, rows + again))
    assert checked.blocks() == 8
    p1t1 = checked.data[(checked.data["participant"] == "p1") & (checked.data["trial"] == "t1")]
    assert dict(zip(p1t1["method"], p1t1["rank"])) == {"a": 3, "b": 2, "c": 1}
    assert list(p1t1.index) == list(range(26, 32))
    assert checked.superseded[["participant", "trial", "criterion", "submission"]].values.tolist() == [
        ["p1", "t1", "visual quality", "s-first"], ["p1", "t1", "temporal consistency", "s-first"]]
    assert checked.superseded["lines"].tolist() == ["lines 2, 3, 4", "lines 5, 6, 7"]


def test_resubmission_order_follows_the_timestamps_not_the_file(tmp_path):
    late = [dict(r, submission="late", submitted_at="2025-01-02T00:00:00Z") for r in valid_rows()[:3]]
    early = [dict(r, submission="early", submitted_at="2025-01-01T00:00:00Z") for r in valid_rows()[:3]]
    early[0]["rank"], early[1]["rank"] = "2", "1"
    rest = [dict(r, submission="x", submitted_at="2025-01-01T00:00:00Z") for r in valid_rows()[3:]]
    checked = load_rankings(write(tmp_path, late + early + rest))
    first = checked.data.loc[[2, 3, 4]]
    assert list(first["rank"]) == [1, 2, 3]
    assert checked.superseded["submission"].tolist() == ["early"]


def test_untouched_blocks_are_flagged(tmp_path):
    rows = valid_rows()
    for row in rows:   # shown position = rank everywhere except one block, which was reordered
        row["position"] = row["rank"]
    rows[0]["position"], rows[1]["position"] = "2", "1"
    checked = load_rankings(write(tmp_path, rows))
    assert len(checked.untouched_blocks) == 7
    assert ("p1", "t1", "visual quality") not in set(map(tuple, checked.untouched_blocks.to_numpy()))


def test_read_keeps_text_as_text(tmp_path):
    rows = valid_rows()
    for row in rows:
        row["participant"] = "007" if row["participant"] == "p1" else "010"
    table = read_rankings(write(tmp_path, rows))
    assert set(table["participant"]) == {"007", "010"}
    assert load_rankings(tmp_path / "rankings.csv").participants == ["007", "010"]


def test_a_line_cut_short_is_one_problem_naming_it(tmp_path):
    """A file cut inside its last row: before, four "is empty" / "is not a number" problems for one cut."""
    path = tmp_path / "r.csv"
    path.write_text("participant,trial,criterion,method,rank\np,t,q,a,1\np,t,q,b,2\np,t")
    with pytest.raises(RankingsError) as error:
        load_rankings(path)
    assert error.value.problems == ["line 4 has 2 fields, the header 5 (a line cut short, or a field missing)"]


def test_the_report_says_untouched_blocks_were_not_checked_without_a_position_column(tmp_path):
    """Before, the section was left out without a word for a hand-made file without positions."""
    from userstudy.analyze import analyze

    path = write(tmp_path, valid_rows())
    analyze(path, tmp_path / "out", study_dir=False, results=False, pairwise=False, bootstrap=0)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Untouched blocks (final ranking = the order shown): not checked, the rankings file has no `position`" \
        in report


def test_a_row_after_a_quoted_newline_is_named_by_its_own_line(tmp_path):
    """An extra comment column whose text holds newlines: before, the rank 9 of file line 7 was named
    "line 4" (records counted, not lines)."""
    path = tmp_path / "rankings.csv"
    path.write_text("participant,trial,criterion,method,rank,comment\n"
                    'p1,t1,q,a,1,"nice\nbut slow"\n'
                    'p1,t1,q,b,2,"one\ntwo\nthree"\n'
                    "p1,t2,q,a,9,\n"
                    "p1,t2,q,b,1,\n")
    lines = path.read_text().split("\n")
    assert lines[7 - 1].startswith("p1,t2,q,a,9")              # the file's own line 7
    with pytest.raises(RankingsError) as error:
        load_rankings(path)
    assert any(problem.startswith("line 7:") and "rank 9" in problem for problem in error.value.problems), \
        error.value.problems


def test_a_misspelt_method_is_named_first_not_only_as_incomplete_blocks(tmp_path):
    """Before, 'imca' in one block of twenty gave twenty "incomplete block" problems, none naming it."""
    rows = []
    for participant in ("p1", "p2"):
        for trial in ("t1", "t2", "t3"):
            for rank, method in enumerate(("imac", "s2g", "mya"), start=1):
                typo = participant == "p1" and trial == "t2" and method == "imac"
                rows.append({"participant": participant, "trial": trial, "criterion": "q",
                             "method": "imca" if typo else method, "rank": str(rank)})
    problems = problems_of(tmp_path, rows)
    assert problems[0] == ("criterion 'q': method 'imca' is in 1 blocks, 'imac' in 5: is 'imca' a misspelling of "
                           "'imac'? (the incomplete blocks reported follow from it)")
    assert all("incomplete block" in p for p in problems[1:])
    fine = [dict(r, method="imac") if r["method"] == "imca" else r for r in rows]
    load_rankings(write(tmp_path, fine))                       # no such problem where every block is whole
