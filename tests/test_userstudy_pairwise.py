"""Pairwise studies: Bradley-Terry against a direct maximum-likelihood loop, participant bootstrap,
win rates and matched-speech shares against direct counts and published values."""

from __future__ import annotations

import choix
import numpy as np
import pandas as pd
import pytest

from userstudy.pairwise import (
    PAIRWISE_COLUMNS,
    PairwiseError,
    analyze_pairwise,
    bradley_terry,
    check_pairwise,
    elo,
    fit_strengths,
    latest_answers,
    mle_exists,
    speech_match,
    win_matrix,
    win_rates,
)
from userstudy.report import pairwise_report_markdown

METHODS = ["imac", "mya", "s2g"]


def simulated(participants=12, answers_each=30, theta=(1.0, 0.0, -0.7), tie_rate=0.15, seed=0, criterion="q",
              split=False):
    """Answers drawn from Bradley-Terry with strengths ``theta``; ``split``: the second half of the
    participants hold the reversed opinion."""
    rng = np.random.default_rng(seed)
    rows = []
    forward = theta
    for p in range(participants):
        theta = forward[::-1] if split and p >= participants // 2 else forward
        for t in range(answers_each):
            i, j = rng.choice(len(METHODS), 2, replace=False)
            if rng.random() < tie_rate:
                preference = 0
            else:
                a_wins = rng.random() < 1 / (1 + np.exp(theta[j] - theta[i]))
                preference = int(rng.choice([1, 2])) * (1 if a_wins else -1)
            rows.append({"participant": f"p{p}", "trial": f"t{t}", "criterion": criterion,
                         "method_a": METHODS[i], "method_b": METHODS[j], "preference": str(preference)})
    return check_pairwise(pd.DataFrame(rows))


def hunter_mm(wins: np.ndarray) -> np.ndarray:
    """Zermelo's / Hunter's (2004) MM iteration for the Bradley-Terry MLE, written out directly:
    p_i <- W_i / sum_j n_ij / (p_i + p_j), until it stops moving; log-strengths with mean 0."""
    k = len(wins)
    n = wins + wins.T
    p = np.ones(k)
    for _ in range(100000):
        new = np.array([wins[i].sum() / sum(n[i, j] / (p[i] + p[j]) for j in range(k) if j != i) for i in range(k)])
        new /= np.exp(np.log(new).mean())
        if np.abs(new - p).max() < 1e-13:
            break
        p = new
    return np.log(p)


def test_bradley_terry_is_the_maximum_likelihood_fit_with_ties_as_half_wins():
    answers = simulated()
    wins = win_matrix(answers, METHODS)
    # the win matrix, counted here row by row: a tie is half a win for each side
    direct = np.zeros((3, 3))
    for row in answers.itertuples():
        i, j = METHODS.index(row.method_a), METHODS.index(row.method_b)
        if row.preference > 0:
            direct[i, j] += 1
        elif row.preference < 0:
            direct[j, i] += 1
        else:
            direct[i, j] += 0.5
            direct[j, i] += 0.5
    np.testing.assert_allclose(wins, direct)
    table = bradley_terry(answers, METHODS, bootstrap=0)
    np.testing.assert_allclose(table["theta"], hunter_mm(direct), atol=1e-6)
    assert not table["regularized"].any() and table["elo_low"].isna().all()
    # the Elo scale: 400 points = 10:1 odds, and the odds are the Bradley-Terry ones; mean 1000
    ratings = table["elo"].to_numpy()
    theta = table["theta"].to_numpy()
    assert ratings.mean() == pytest.approx(1000.0)
    assert 1 / (1 + 10 ** ((ratings[1] - ratings[0]) / 400)) == pytest.approx(1 / (1 + np.exp(theta[1] - theta[0])))


def test_intervals_resample_participants_not_answers():
    answers = simulated(participants=12)
    table = bradley_terry(answers, METHODS, bootstrap=300, seed=1)
    assert (table["elo_low"] < table["elo"]).all() and (table["elo"] < table["elo_high"]).all()
    # the same answers given by one participant: resampling participants changes nothing
    one = answers.assign(participant="solo")
    single = bradley_terry(one, METHODS, bootstrap=50, seed=1)
    np.testing.assert_allclose(single["elo_low"], single["elo"], atol=1e-6)
    np.testing.assert_allclose(single["elo_high"], single["elo"], atol=1e-6)
    # participants who disagree (half hold the reversed opinion): resampling participants sees it,
    # resampling answers (done here directly, refitting each resample) does not
    split = simulated(participants=12, theta=(1.5, 0.0, -1.5), split=True, seed=3)
    by_participant = bradley_terry(split, METHODS, bootstrap=200, seed=2)
    rng = np.random.default_rng(5)
    by_answer = np.array([bradley_terry(split.iloc[rng.integers(0, len(split), len(split))], METHODS,
                                        bootstrap=0)["elo"].to_numpy() for _ in range(200)])
    width_answer = np.quantile(by_answer, 0.975, axis=0) - np.quantile(by_answer, 0.025, axis=0)
    width_participant = (by_participant["elo_high"] - by_participant["elo_low"]).to_numpy()
    assert (width_participant[[0, 2]] > 1.5 * width_answer[[0, 2]]).all(), (width_participant, width_answer)


def test_a_method_that_never_loses_is_fitted_with_regularisation_and_said_so():
    rows = [{"participant": "p", "trial": f"t{i}", "criterion": "q", "method_a": "imac", "method_b": b,
             "preference": "1"} for i, b in enumerate(["mya", "s2g"] * 3)]
    rows += [{"participant": "p", "trial": "u", "criterion": "q", "method_a": "mya", "method_b": "s2g",
              "preference": "-1"}]
    table = bradley_terry(check_pairwise(pd.DataFrame(rows)), METHODS, bootstrap=0)
    assert table["regularized"].all() and np.isfinite(table["elo"]).all()
    assert table.set_index("method")["elo"].idxmax() == "imac"


def test_win_rates_and_matched_speech_shares_are_counted():
    answers = simulated(seed=4)
    rates = win_rates(answers, METHODS).set_index(["method_a", "method_b"])
    pair = answers[((answers["method_a"] == "imac") & (answers["method_b"] == "s2g"))
                   | ((answers["method_a"] == "s2g") & (answers["method_b"] == "imac"))]
    imac_wins = (((pair["method_a"] == "imac") & (pair["preference"] > 0))
                 | ((pair["method_b"] == "imac") & (pair["preference"] < 0))).sum()
    ties = (pair["preference"] == 0).sum()
    row = rates.loc[("imac", "s2g")]
    assert (row["answers"], row["wins_a"], row["ties"]) == (len(pair), imac_wins, ties)
    assert row["win_rate_a"] == pytest.approx((imac_wins + ties / 2) / len(pair))
    # 7 of 10 pick the matched video, 1 tie: Clopper-Pearson 95% interval (0.3475, 0.9333) (published
    # tables); the binomial test among the 9 that picked a video, 7 of 9: p = 2 * 46/512 = 0.1797
    match = pd.DataFrame({"participant": [f"p{i}" for i in range(10)], "trial": "m", "criterion": "sync",
                          "method_a": "imac", "method_b": "imac", "kind": "match",
                          "preference": ["2", "1", "1", "2", "1", "1", "2", "0", "-1", "-2"]})
    shares = speech_match(check_pairwise(match)).iloc[0]
    assert (shares["answers"], shares["picked_matched"], shares["ties"]) == (10, 7, 1)
    assert shares["share"] == pytest.approx(0.7)
    assert shares["share_low"] == pytest.approx(0.3475, abs=1e-4)
    assert shares["share_high"] == pytest.approx(0.9333, abs=1e-4)
    assert shares["p"] == pytest.approx(2 * 46 / 512)
    assert shares["mean_preference"] == pytest.approx(0.7)


def test_a_whole_pairwise_study_per_criterion():
    answers = pd.concat([simulated(seed=1, criterion="naturalness"), simulated(seed=2, criterion="sync")])
    match = pd.DataFrame({"participant": "p1", "trial": ["m1", "m2"], "criterion": "sync", "method_a": "mya",
                          "method_b": "mya", "kind": "match", "preference": ["1", "-1"]})
    study = analyze_pairwise(check_pairwise(pd.concat([answers, match], ignore_index=True)), bootstrap=20)
    assert sorted(study.strengths["criterion"].unique()) == ["naturalness", "sync"]
    assert len(study.win_rates) == 6 and list(study.speech_match["method"]) == ["mya"]


def test_bad_answers_are_named_by_line():
    table = pd.DataFrame({"participant": ["p", "p", "p", ""], "trial": "t", "criterion": "q",
                          "method_a": ["a", "a", "a", "a"], "method_b": ["b", "a", "b", "b"],
                          "preference": ["1", "0", "3", "1"], "kind": ["", "compare", "match", "compare"]})
    table.index = pd.RangeIndex(2, 6, name="line")
    with pytest.raises(PairwiseError) as error:
        check_pairwise(table, source="pairwise.csv")
    assert error.value.problems == [
        "line 5: participant is empty",
        "line 4: preference must be an integer from -2 to 2 (found '3')",
        "line 3: a 'compare' answer needs two different methods",
        "line 4: a 'match' answer compares one method's videos with matched and mismatched speech: method_a and "
        "method_b must be the same",
    ]
    assert elo(np.array([0.0, np.log(10)]))[1] - elo(np.array([0.0, np.log(10)]))[0] == pytest.approx(400)


def test_the_analyze_command_recognises_pairwise_answers(tmp_path, capsys):
    from userstudy import analyze as analyze_command

    answers = simulated(seed=6, participants=6)
    match = pd.DataFrame({"participant": "p1", "trial": ["m1", "m2", "m3"], "criterion": "q", "method_a": "mya",
                          "method_b": "mya", "kind": "match", "preference": ["1", "2", "0"]})
    pd.concat([answers, match], ignore_index=True).to_csv(tmp_path / "pairwise.csv", index=False)
    code = analyze_command.main([str(tmp_path / "pairwise.csv"), "--out", str(tmp_path / "out"),
                                 "--bootstrap", "30", "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "bradley_terry.csv")
    # full precision in the file: the same numbers as the API's
    expected = bradley_terry(check_pairwise(answers), METHODS, bootstrap=30, seed=3)
    np.testing.assert_allclose(table["elo"], expected["elo"], rtol=1e-12)
    np.testing.assert_allclose(table["elo_low"], expected["elo_low"], rtol=1e-12)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Bradley-Terry ratings" in report and "## Matched versus mismatched speech" in report
    assert "| q | mya | 3 | 1 | 0.667 |" in report
    pd.DataFrame({"participant": ["p"], "trial": ["t"], "criterion": ["q"], "method_a": ["a"], "method_b": ["b"],
                  "preference": ["5"]}).to_csv(tmp_path / "bad.csv", index=False)
    assert analyze_command.main([str(tmp_path / "bad.csv")]) == 2
    assert "line 2: preference must be an integer from -2 to 2" in capsys.readouterr().err


def answers_table(rows, columns=("participant", "trial", "criterion", "method_a", "method_b", "preference",
                                 "submission", "submitted_at")) -> pd.DataFrame:
    table = pd.DataFrame([dict(zip(columns, row)) for row in rows])
    table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    return table


def test_an_answer_saved_again_counts_once_and_the_latest_wins():
    """p1 answers t1 three times (line 3 is the latest by time, line 4 repeats line 2 exactly), p2 twice
    on different trials. Counted by hand: kept p1/t1 -1, p2/t1 +1, p2/t2 0, so a vs b is 1 win each and
    1 tie; lines 2 and 4 are replaced."""
    table = answers_table([
        ("p1", "t1", "q", "a", "b", "1", "s1", "2024-05-01T10:00:00Z"),
        ("p1", "t1", "q", "a", "b", "-1", "s2", "2024-05-01T10:05:00Z"),
        ("p1", "t1", "q", "a", "b", "1", "s1", "2024-05-01T10:00:00Z"),   # an exact repeat of line 2
        ("p2", "t1", "q", "a", "b", "1", "s3", "2024-05-01T10:01:00Z"),
        ("p2", "t2", "q", "a", "b", "0", "s4", "2024-05-01T10:02:00Z"),
    ])
    study = analyze_pairwise(check_pairwise(table), bootstrap=0)
    assert sorted(study.answers.index) == [3, 5, 6]
    rate = study.win_rates.iloc[0]
    assert (rate["answers"], rate["wins_a"], rate["wins_b"], rate["ties"]) == (3, 1, 1, 1)
    assert list(study.superseded["lines"]) == ["line 2", "line 4"]
    assert list(study.superseded["submission"]) == ["s1", "s1"]
    # without times or submission ids the order of the rows decides, and a copied row counts once
    plain = answers_table([("p1", "t1", "q", "a", "b", "1"), ("p1", "t1", "q", "a", "b", "1"),
                           ("p1", "t2", "q", "a", "b", "1"), ("p1", "t2", "q", "a", "b", "-1")],
                          columns=PAIRWISE_COLUMNS)
    kept, superseded = latest_answers(check_pairwise(plain))
    assert list(kept.index) == [3, 5] and list(kept["preference"]) == [1, -1] and len(superseded) == 2
    report = pairwise_report_markdown(study, "answers.csv")
    assert "**Answers replaced: 2**" in report and "| p1 | t1 | q | s1 | 2024-05-01T10:00:00Z | line 4 |" in report
    assert "Answers replaced by a later answer: none." in pairwise_report_markdown(
        analyze_pairwise(check_pairwise(plain.iloc[[0, 2]]), bootstrap=0), "x.csv")


def test_one_participant_gives_no_numpy_warnings_and_the_report_says_the_interval_is_undefined(recwarn):
    # one participant by whom a never wins: the unregularised fit of every resample takes log(0)
    rows = [("p1", f"t{i}", "q", "a", b, "-1") for i, b in enumerate(["b", "c", "b", "c"])]
    rows += [("p1", "t9", "q", "b", "c", "0")]
    answers = check_pairwise(answers_table(rows, columns=PAIRWISE_COLUMNS))
    with np.errstate(all="warn"):
        study = analyze_pairwise(answers, bootstrap=200)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in recwarn]
    assert set(study.strengths["participants"]) == {1} and study.few_participants() == {"q": 1}
    report = pairwise_report_markdown(study, "answers.csv")
    assert "With 1 participant the Bradley-Terry intervals are undefined" in report
    assert "Input: `answers.csv`; 1 participant, 5 answers (5 comparisons of two methods" in report
    # three participants: unstable, and the number of different resamples is C(5, 3) = 10
    three = answers.assign(participant=["p1", "p2", "p3", "p1", "p2"])
    report = pairwise_report_markdown(analyze_pairwise(three, bootstrap=50), "answers.csv")
    assert "With 3 participants the Bradley-Terry intervals are unstable" in report and "at most 10 different" in report
    assert analyze_pairwise(simulated(participants=6), bootstrap=20).few_participants() == {}


def test_ties_only_are_counted_not_a_crash():
    # every answer is "equal": the strict win matrix is empty (it raised IndexError)
    table = check_pairwise(answers_table([("p1", "t1", "q", "a", "b", "0"), ("p2", "t1", "q", "a", "b", "0")],
                                         columns=PAIRWISE_COLUMNS))
    rate = win_rates(table, ["a", "b"]).iloc[0]
    assert (rate["answers"], rate["wins_a"], rate["wins_b"], rate["ties"], rate["win_rate_a"]) == (2, 0, 0, 2, 0.5)


def test_the_maximum_likelihood_fit_is_skipped_exactly_when_it_cannot_be_finite():
    # by hand: a cycle a > b > c > a has finite strengths; a method that never wins, or two groups
    # that never met, do not
    assert mle_exists(np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))
    assert not mle_exists(np.array([[0, 0, 0], [1, 0, 0.5], [1, 0.5, 0]]))
    assert not mle_exists(np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]))
    # on random win matrices: the condition holds exactly when choix's unregularised fit, called
    # here directly, converges to finite values
    rng = np.random.default_rng(11)
    for _ in range(60):
        k = int(rng.integers(2, 5))
        wins = np.zeros((k, k))
        for _ in range(int(rng.integers(1, 8))):
            i, j = rng.choice(k, 2, replace=False)
            wins[i, j] += 1.0
        with np.errstate(all="ignore"):
            try:
                finite = bool(np.all(np.isfinite(choix.ilsr_pairwise_dense(wins, alpha=0.0, max_iter=1000))))
            except (ValueError, RuntimeError):
                finite = False
        assert mle_exists(wins) == finite, wins
        assert fit_strengths(wins)[1] == (not finite)


def test_several_bad_preferences_are_each_paired_with_their_line():
    """Before, the values were listed sorted as a set ("lines 3, 4 ... (found '1.5', '3')"), read as line 3
    holding '1.5' when it held '3'."""
    table = pd.DataFrame({"participant": "p", "trial": "t", "criterion": "q", "method_a": "a", "method_b": "b",
                          "preference": ["1", "3", "1.5", "0"], "kind": "compare"})
    table.index = pd.RangeIndex(2, 6, name="line")
    with pytest.raises(PairwiseError) as error:
        check_pairwise(table, source="pairwise.csv")
    assert error.value.problems == [
        "lines 3, 4: preference must be an integer from -2 to 2 (found '3' on line 3, '1.5' on line 4)"]
