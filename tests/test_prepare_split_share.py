"""The split as realised: train/test seconds by whole sources, a warning when far from the asked share."""

from __future__ import annotations

import pytest

from bench.data.prepare.split import split_by_source, statistics_markdown, statistics_rows


def test_two_sources_report_the_share_they_give_and_warn():
    seconds = {"long": 4300.0, "short": 5700.0}           # the case: 57% of the hours in one source
    result = split_by_source(seconds, 0.05, "ann", seed=0)
    test = sum(seconds[s] for s in result.test_sources)
    assert (result.test_seconds, result.train_seconds) == (test, 10000.0 - test)
    assert result.test_share == pytest.approx(test / 10000.0)
    assert result.warning is not None and f"{result.test_share:.0%} of the hours to test" in result.warning


def test_a_close_share_gives_no_warning():
    seconds = {f"s{k}": 100.0 for k in range(20)}           # 5% is one source exactly
    result = split_by_source(seconds, 0.05, "ann", seed=0)
    assert result.test_share == pytest.approx(0.05) and result.warning is None


def test_minutes_of_data_do_not_print_as_zero_hours():
    lines = [{"identity": "a", "split": split, "clip_id": f"c{k}", "num_frames": n, "fps": 25, "width": 512,
              "height": 512, "source": f"s{k}"} for k, (split, n) in enumerate([("train", 3000), ("test", 1000)])]
    table = statistics_markdown(statistics_rows(lines, {}))
    # 120 s + 40 s: 0.0333 h train, 0.0111 h test, a 25% test share
    assert "| 0.0444 | 0.0333 | 0.0111 | 25% |" in table
