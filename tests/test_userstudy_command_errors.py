"""Every bad input a new user tried is one line on stderr, ``python -m userstudy <command>: error:
<file>: <what is wrong>``, with exit status 2 and no traceback; a study.json or run.json given for
its folder stands for it (as imac-bench's results.json does). The expected lines are written out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from test_userstudy_run_study import fake_run
from userstudy_data.helpers import make_study

from userstudy import progress
from userstudy.__main__ import main
from userstudy.simulate import simulate_rankings
from userstudy.study import load_study

PAIRWISE = ("participant", "trial", "criterion", "method_a", "method_b", "preference")


@pytest.fixture
def files(tmp_path):
    """A rankings file, a study folder holding rankings.csv and a results.json, a run folder."""
    rankings = tmp_path / "r.csv"
    simulate_rankings(["a", "b", "c"], 3, 2, seed=1).to_csv(rankings, index=False)
    study = make_study(tmp_path)
    simulate_rankings(["imac", "s2g", "mya"], 2, 1, criteria=["visual quality"]).assign(trial="t1").to_csv(
        study / "rankings.csv", index=False)
    (study / "results.json").write_text("{}")
    return {"rankings": rankings, "study": study, "run": fake_run(tmp_path / "bench"), "root": tmp_path}


def cases(f: dict) -> list[tuple[list[str], str]]:
    r, study, run, root = f["rankings"], f["study"], f["run"], f["root"]
    return [
        (["analyze", str(study)],
         f"python -m userstudy analyze: error: {study}: is a folder, not a CSV file (it holds rankings.csv: give the file)"),
        (["analyze", str(root / "missing.csv")], f"python -m userstudy analyze: error: {root / 'missing.csv'}: no such file"),
        (["analyze", str(r), "--study", str(r)],
         f"python -m userstudy analyze: error: {r}: is a file, not a study folder (give the folder that holds study.json)"),
        (["analyze", str(r), "--study", str(root / "nowhere")],
         f"python -m userstudy analyze: error: {root / 'nowhere'}: no such folder (make a study with python -m "
         "userstudy make-study)"),
        (["analyze", str(r), "--out", str(r)],
         f"python -m userstudy analyze: error: {r}: is a file; the analysis writes its files into a folder (--out DIR)"),
        (["analyze", str(r), "--results", str(study)],
         f"python -m userstudy analyze: error: {study}: is a folder, not a results file (it holds results.json: give "
         "that file)"),
        (["analyze", str(r), "--pairwise", str(study)],
         f"python -m userstudy analyze: error: {study}: is a folder, not a CSV file (it holds rankings.csv: give the "
         "file)"),
        (["make-study", "--out", str(r), "--run", str(run)],
         f"python -m userstudy make-study: error: {r}: is a file; --out is the study folder to create"),
        (["make-study", "--out", str(root / "new"), "--run", str(r)],
         f"python -m userstudy make-study: error: {r}: is a file, not a benchmark run folder (give the folder that "
         "holds run.json)"),
        (["make-study", "--out", str(study), "--run", str(run)],
         f"python -m userstudy make-study: error: {study / 'study.json'} exists already; choose a new folder"),
        (["make-study", "--out", str(root / "bench"), "--run", str(run)],
         f"python -m userstudy make-study: error: {root / 'bench'}: the folder exists and holds other files; --out is "
         "the study folder to create: choose a new (or empty) one"),
        (["serve", "--study", str(r), "--port", "0"],
         f"python -m userstudy serve: error: {r}: is a file, not a study folder (give the folder that holds study.json)"),
        (["simulate", "--methods", "a,a,c", "--out", str(root / "s.csv")],
         "python -m userstudy simulate: error: --methods a,a,c: a given more than once; name each method once"),
        (["simulate", "--methods", "a,b", "--out", str(root)],
         f"python -m userstudy simulate: error: {root}: is a folder; --out is the rankings CSV file to write"),
        # inside the options' ranges, but 596 GiB of judgements: refused before anything is allocated
        (["simulate", "--methods", "a,b", "--participants", "100000", "--trials", "100000", "--out",
          str(root / "new")],
         "python -m userstudy simulate: error: participants x trials x criteria x methods = 100000 x 100000 x 4 x 2 "
         "= 80,000,000,000 rows; a simulated study has at most 10,000,000 (give fewer participants or trials)"),
        # a study file's problem names --out's study.json, not the hidden folder it is built in
        (["make-study", "--out", str(root / "new"), "--run", str(run), "--criteria", "a,A"],
         "python -m userstudy make-study: error: criteria (--criteria): names must differ in their letters and "
         "digits, got ['a', 'A']"),
        (["make-study", "--out", str(root / "new"), "--run", str(run), "--completion-url", "ftp://x"],
         f"python -m userstudy make-study: error: {root / 'new' / 'study.json'}: completion_url: an http(s) address, "
         "got 'ftp://x'"),
    ]


CASES = 17


@pytest.mark.parametrize("number", range(CASES))
def test_a_bad_input_is_one_line_naming_the_file(files, number, capsys):
    argv, expected = cases(files)[number]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == expected and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [expected]
    assert not (files["root"] / "new").exists()
    assert not [p.name for p in files["root"].iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize(("command", "option"), [
    ("simulate", "--criteria"), ("simulate", "--methods"), ("make-study", "--criteria"),
    ("make-study", "--methods"), ("make-study", "--check-criteria"), ("analyze", "--methods"),
])
def test_an_empty_list_of_names_is_refused_not_taken_for_the_default(files, command, option, capsys):
    # simulate's "--criteria ," failed on numpy shapes, make-study's silently used the paper's four
    root = files["root"]
    argv = {"simulate": ["simulate", "--methods", "a,b", "--out", str(root / "new" / "x.csv")],
            "make-study": ["make-study", "--run", str(files["run"]), "--out", str(root / "new")],
            "analyze": ["analyze", str(files["rankings"]), "--out", str(root / "new")]}[command]
    with pytest.raises(SystemExit) as exit_:
        main(argv + [option, ","])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err.splitlines() == [f"python -m userstudy {command}: error: argument {option}: ',' names nothing: "
                                f"give comma-separated names (see python -m userstudy {command} --help)"]
    assert not (root / "new").exists()


def test_the_number_of_cases_is_counted():
    assert len(cases({"rankings": Path("r"), "study": Path("s"), "run": Path("b"), "root": Path(".")})) == CASES


def test_a_csv_line_with_too_many_fields_is_named(tmp_path, capsys):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("participant,trial,criterion,method,rank\np1,t1,q,a,1\np1,t1,q,b,2,extra,more\n")
    assert main(["analyze", str(ragged)]) == 2
    assert capsys.readouterr().err == (f"python -m userstudy analyze: error: {ragged}: not a readable CSV file: "
                                       "line 3 has 7 fields, the header 5 (a field that holds a comma needs double "
                                       "quotes)\n")
    # on the first line after the header too (pandas took its extra fields for an index, and every
    # column shifted: "position is not a number" on every line)
    first = tmp_path / "first.csv"
    first.write_text("participant,trial,criterion,method,rank\np1,t1,q,a,1,x\np1,t1,q,b,2\n")
    assert main(["analyze", str(first)]) == 2
    assert capsys.readouterr().err == (f"python -m userstudy analyze: error: {first}: not a readable CSV file: "
                                       "line 2 has 6 fields, the header 5 (a field that holds a comma needs double "
                                       "quotes)\n")
    rankings, pairwise = tmp_path / "r.csv", tmp_path / "pairwise.csv"
    simulate_rankings(["a", "b"], 2, 2, seed=1).to_csv(rankings, index=False)
    pairwise.write_text(",".join(PAIRWISE) + "\np,t,q,a,b,1,x,y\n")
    assert main(["analyze", str(rankings), "--pairwise", str(pairwise), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"python -m userstudy analyze: error: {pairwise}: not a readable CSV file: "
                                       "line 2 has 8 fields, the header 6 (a field that holds a comma needs double "
                                       "quotes)\n")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('participant,trial,criterion,method_a,method_b,preference\np,t,q,a,b,1\n"p,t,q,a,b,1\n')
    assert main(["analyze", str(quoted)]) == 2
    assert "line 3 opens a double quote that is never closed" in capsys.readouterr().err


def test_a_study_json_or_run_json_stands_for_its_folder(files, tmp_path, capsys):
    study = files["study"]
    out_folder, out_file = tmp_path / "by_folder", tmp_path / "by_file"
    assert main(["analyze", str(study / "rankings.csv"), "--out", str(out_folder), "--study", str(study),
                 "--no-results"]) == 0
    assert main(["analyze", str(study / "rankings.csv"), "--out", str(out_file), "--study",
                 str(study / "study.json"), "--no-results"]) == 0
    assert (out_folder / "points.csv").read_bytes() == (out_file / "points.csv").read_bytes()
    by_file = load_study(study / "study.json")
    assert by_file == load_study(study)
    run = files["run"]
    assert main(["make-study", "--out", str(tmp_path / "s1"), "--run", str(run / "run.json"), "--seed", "k"]) == 0
    assert main(["make-study", "--out", str(tmp_path / "s2"), "--run", str(run), "--seed", "k"]) == 0
    first, second = load_study(tmp_path / "s1"), load_study(tmp_path / "s2")
    assert [(t.id, t.clip) for t in first.trials] == [(t.id, t.clip) for t in second.trials]


def test_counts_are_worded_for_one(tmp_path, capsys, caplog):
    csv = tmp_path / "one.csv"
    with caplog.at_level("INFO", logger="userstudy"):
        assert main(["simulate", "--methods", "a,b,c", "--participants", "1", "--trials", "1", "--out", str(csv)]) == 0
    assert any("(1 participant x 1 trial x 4 criteria x 3 methods)" in r.getMessage() for r in caplog.records)
    assert main(["analyze", str(csv), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("1 participant, 1 trial, 4 blocks used")


def pairwise_file(path: Path, participants: int = 6) -> Path:
    rows = [{"participant": f"p{p}", "trial": f"t{t}", "criterion": "q", "method_a": a, "method_b": b,
             "preference": str((p + t) % 3 - 1)}
            for p in range(participants) for t, (a, b) in enumerate([("x", "y"), ("y", "z"), ("x", "z")])]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_bootstrap_logs_its_progress_unless_quiet(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)   # every resample is "long" here
    answers = pairwise_file(tmp_path / "answers.csv")
    with caplog.at_level("INFO", logger="userstudy"):
        assert main(["analyze", str(answers), "--out", str(tmp_path / "a"), "--bootstrap", "7"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "userstudy.pairwise"]
    assert lines == [f"Bradley-Terry bootstrap: {i} of 7 resamples" for i in range(1, 7)] + [
        "Bradley-Terry bootstrap: 7 of 7 resamples (done)"]
    caplog.clear()
    with caplog.at_level("INFO", logger="userstudy"):
        assert main(["analyze", str(answers), "--out", str(tmp_path / "b"), "--bootstrap", "7", "--quiet"]) == 0
    assert not [r for r in caplog.records if r.name == "userstudy.pairwise"]


def test_progress_lines_come_at_most_every_few_seconds():
    """A clock read by hand: a line once 2 s have passed since the last, a last one when done."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("userstudy.test_progress")
    logger.setLevel(logging.INFO)
    logger.addHandler(Keep())
    times = iter([0.0, 0.5, 2.1, 2.5, 4.2, 4.3])
    counter = progress.Progress(logger, "work", 5, "steps", every=2.0, clock=lambda: next(times))
    for _ in range(5):
        counter.advance()
    assert records == ["work: 2 of 5 steps", "work: 4 of 5 steps", "work: 5 of 5 steps (done)"]
    records.clear()
    quick = iter([0.0, 0.1, 0.2])
    counter = progress.Progress(logger, "work", 2, every=2.0, clock=lambda: next(quick))
    counter.advance()
    counter.advance()
    assert records == []


def test_the_auto_found_files_can_be_left_out_and_the_report_names_the_real_pairwise_file(files, tmp_path):
    study = files["study"]
    document = json.loads((study / "study.json").read_text())
    first = document["trials"][0]["videos"]
    document["trials"].append({"id": "c1", "kind": "compare", "videos": {m: first[m] for m in ("imac", "mya")}})
    (study / "study.json").write_text(json.dumps(document))
    rows = [{"participant": p, "trial": "c1", "criterion": c, "method_a": "imac", "method_b": "mya",
             "preference": v} for p, v in (("x", 1), ("y", -1)) for c in ("visual quality",)]
    pd.DataFrame(rows).to_csv(study / "pairwise.csv", index=False)
    pd.DataFrame(rows + rows[:1]).to_csv(study / "answers_v2.csv", index=False)   # x's answer saved twice
    (study / "results.json").unlink()
    out = tmp_path / "named"
    assert main(["analyze", str(study / "rankings.csv"), "--out", str(out), "--pairwise",
                 str(study / "answers_v2.csv"), "--bootstrap", "0"]) == 0
    report = (out / "report.md").read_text()
    assert f"The study's pairwise trials (`{study / 'answers_v2.csv'}`)" in report
    assert "`pairwise.csv`" not in report.split("## Pairwise trials")[1].split("## Files")[0]
    assert "Pairwise answers replaced by a later answer of the same participant: **1**" in report
    assert "| x | c1 | visual quality |  |  | line 2 |" in report
    out = tmp_path / "alone"
    assert main(["analyze", str(study / "rankings.csv"), "--out", str(out), "--no-pairwise", "--bootstrap", "0"]) == 0
    assert not (out / "bradley_terry.csv").exists() and "## Pairwise trials" not in (out / "report.md").read_text()
    assert (main(["analyze", str(study / "rankings.csv"), "--out", str(tmp_path / "x"), "--no-study",
                  "--no-pairwise", "--no-results"]) == 0)
    assert not (tmp_path / "x" / "attention_checks.csv").exists()
    assert os.path.isdir(tmp_path / "x")


def test_an_output_under_a_file_names_that_file(files, capsys):
    r, run = files["rankings"], files["run"]
    for argv, expected in [
        (["analyze", str(r), "--out", str(r / "out")],
         f"python -m userstudy analyze: error: {r}: is a file, so the output folder {r / 'out'} cannot be made (--out DIR)"),
        (["simulate", "--methods", "a,b", "--out", str(r / "s.csv")],
         f"python -m userstudy simulate: error: {r}: is a file, so {r / 's.csv'} cannot be written (--out)"),
        (["make-study", "--out", str(r / "study"), "--run", str(run)],
         f"python -m userstudy make-study: error: {r}: is a file, so the study folder {r / 'study'} cannot be made "
         "(--out)"),
    ]:
        assert main(argv) == 2
        assert capsys.readouterr().err.splitlines() == [expected]


@pytest.mark.parametrize("option, value, said", [
    ("--bootstrap", "-3", "argument --bootstrap: -3 is outside 0..1000000"),
    ("--seed", "-1", "argument --seed: -1 is outside 0..9223372036854775807"),
    ("--max-failed-checks", "-1", "argument --max-failed-checks: -1 is outside 0..1000000"),
    ("--repeat-min-tau", "2", "argument --repeat-min-tau: 2 is outside -1..1"),
    ("--repeat-min-tau", "nan", "argument --repeat-min-tau: nan is outside -1..1"),
    ("--alpha", "0", "argument --alpha: 0 is not strictly between 0 and 1"),
    ("--alpha", "1.5", "argument --alpha: 1.5 is not strictly between 0 and 1"),
    ("--alpha", "five", "argument --alpha: 'five' is not a number"),
    ("--level", "1", "argument --level: 1 is not strictly between 0 and 1"),
    ("--level", "nan", "argument --level: nan is not strictly between 0 and 1"),
])
def test_analysis_numbers_are_checked_by_argparse_before_any_work(files, tmp_path, option, value, said, capsys):
    out = tmp_path / "analysis"
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(files["rankings"]), "--out", str(out), option, value])
    assert exit_.value.code == 2 and f"python -m userstudy analyze: error: {said}" in capsys.readouterr().err
    assert not out.exists()


def test_a_closed_pipe_on_stdout_ends_a_command_quietly(tmp_path):
    # `analyze ... | head -1` ended in a BrokenPipeError traceback. Here stdout is a pipe whose reader is
    # already gone, so the first line written fails as it did there (no race with the reader)
    import subprocess
    import sys

    simulated = tmp_path / "sim.csv"
    assert subprocess.run([sys.executable, "-m", "userstudy", "simulate", "--methods", "a,b,c", "--participants", "4",
                           "--trials", "3", "--out", str(simulated)], capture_output=True).returncode == 0
    script = ("import os, sys\nfrom userstudy.analyze import main\nread, write = os.pipe()\nos.close(read)\n"
              "os.dup2(write, 1)\nsys.stdout = open(1, 'w', buffering=1)\n"
              f"code = main([{str(simulated)!r}, '--out', {str(tmp_path / 'out')!r}, '--bootstrap', '0', '--quiet'])\n"
              "print(f'status {code}', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "status 141"


def test_simulate_effects_name_every_method(capsys):
    from userstudy.simulate import main as simulate_main
    # a=0,b=-1 gave the unnamed c quality 0: as good as a, without a word
    assert simulate_main(["--methods", "a,b,c", "--effect", "a=0,b=-1", "--power", "2"]) == 2
    assert "--effect: give every method of --methods a quality (missing: c)" in capsys.readouterr().err


def test_a_bad_row_is_named_once_without_blaming_the_sound_rows_of_its_block(tmp_path, capsys):
    # after the NaN row was set aside, the block's rank 3 read as "outside 1..2 (the criterion has 2 methods)"
    from userstudy.analyze import main as analyze_main
    bad = tmp_path / "bad.csv"
    bad.write_text("participant,trial,criterion,method,rank\np1,t1,vq,a,NaN\np1,t1,vq,b,2\np1,t1,vq,c,3\n"
                   "p2,t1,vq,a,1\np2,t1,vq,b,2\np2,t1,vq,c,3\n")
    assert analyze_main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{bad}: line 2: rank is not a number (found 'NaN')")


def test_a_column_named_twice_is_refused_not_half_read(tmp_path, capsys):
    from userstudy.analyze import main as analyze_main
    twice = tmp_path / "twice.csv"
    twice.write_text("participant,trial,criterion,method,rank,rank\np1,t1,vq,a,1,2\np1,t1,vq,b,2,1\n")
    assert analyze_main([str(twice), "--out", str(tmp_path / "out")]) == 2
    assert "the header names the column(s) 'rank' more than once" in capsys.readouterr().err


def test_an_export_appended_to_itself_counts_each_save_once(tmp_path):
    from userstudy.analyze import analyze
    from userstudy.simulate import simulate_rankings
    study = simulate_rankings(["a", "b", "c"], 6, 4, 0.5, criteria=["q"], seed=1)
    study["submission"] = study["participant"] + "-" + study["trial"]
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    study.to_csv(once, index=False)
    pd.concat([study, study]).to_csv(twice, index=False)
    one, two = analyze(once, tmp_path / "o1", bootstrap=0), analyze(twice, tmp_path / "o2", bootstrap=0)
    pd.testing.assert_frame_equal(one.points, two.points)
    assert one.rankings.blocks() == two.rankings.blocks() == 6 * 4


def test_new_user_slips_are_named(tmp_path, capsys, caplog):
    """simulate refuses two criteria that analyze would refuse (one file name); --methods names the method it
    lists twice; a non-ASCII video name is named with its file and the rule says ASCII; counts of one are
    singular (before: "1 trials x 2 methods")."""
    out = tmp_path / "x.csv"
    assert main(["simulate", "--methods", "a,b,c", "--criteria", "q,Q", "--out", str(out)]) == 2
    assert "criteria 'q' and 'Q' would both be written as *_q.csv" in capsys.readouterr().err and not out.exists()
    assert main(["simulate", "--methods", "a,b,c", "--participants", "3", "--trials", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out), "--methods", "a,b,b,c", "--out", str(tmp_path / "o")]) == 2
    assert "; listed more than once: ['b']" in capsys.readouterr().err
    from userstudy_data.media import write_video

    for method in "ab":
        write_video(tmp_path / method / "clïp.mp4", 90, 440.0)
    assert main(["make-study", "--out", str(tmp_path / "s"), f"--method=a={tmp_path / 'a'}",
                 f"--method=b={tmp_path / 'b'}"]) == 2
    assert (f"video name 'clïp' ({tmp_path / 'a' / 'clïp.mp4'}; {tmp_path / 'b' / 'clïp.mp4'}) cannot be a trial "
            "id: 1-64 ASCII letters") in capsys.readouterr().err
    for method in "ab":
        (tmp_path / method / "clïp.mp4").rename(tmp_path / method / "t1.mp4")
    with caplog.at_level("INFO", logger="userstudy"):
        assert main(["make-study", "--out", str(tmp_path / "s"), f"--method=a={tmp_path / 'a'}",
                     f"--method=b={tmp_path / 'b'}", "--criteria", "visual quality"]) == 0
    assert "'Video ranking study': 1 trial x 2 methods, 1 criterion, written to" in caplog.text


def test_too_many_methods_are_refused_before_reading_and_one_folder_twice_is_warned_about(tmp_path, capsys, caplog):
    from userstudy.study import BLIND_LETTERS
    from userstudy_data.media import write_video

    write_video(tmp_path / "a" / "t1.mp4", 90, 440.0)
    many = [f"--method=m{i}={tmp_path / 'missing'}" for i in range(len(BLIND_LETTERS) + 1)]
    assert main(["make-study", "--out", str(tmp_path / "s")] + many) == 2
    err = capsys.readouterr().err
    assert f"at most {len(BLIND_LETTERS)} methods (one blinded letter each), got {len(BLIND_LETTERS) + 1}" in err
    assert "study.json" not in err                        # before: named a study file never written
    with caplog.at_level("WARNING", logger="userstudy"):
        assert main(["make-study", "--out", str(tmp_path / "s"), f"--method=x={tmp_path / 'a'}",
                     f"--method=y={tmp_path / 'a'}", "--criteria", "visual quality"]) == 0
    assert f"methods x, y read the same folder {tmp_path / 'a'}" in caplog.text
