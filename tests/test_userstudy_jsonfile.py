"""The JSON files userstudy reads from others (study.json, run.json, results.json) are bounded in
size and nesting, and a refused file is named instead of a traceback."""

from __future__ import annotations

import json
import random

import pytest
from test_userstudy_run_study import fake_run

from userstudy.jsonfile import JSONFileError, nesting_depth, read_json
from userstudy.make_study import make_study_from_run
from userstudy.study import STUDY_FILE, StudyError, load_study


def depth_by_walk(value) -> int:
    """The reference: how deep the parsed value nests, by walking it."""
    if isinstance(value, dict):
        return 1 + max((depth_by_walk(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_by_walk(v) for v in value), default=0)
    return 0


def random_document(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([1, 2.5, None, True, 'a "[quoted" {brace}', "back\\slash]", "\u00e9\\\"]"])
    if rng.random() < 0.5:
        return [random_document(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}[": random_document(rng, depth - 1) for i in range(rng.randint(0, 3))}


@pytest.mark.parametrize("seed", range(20))
def test_nesting_depth_matches_a_walk_of_the_parsed_value(seed):
    document = random_document(random.Random(seed), 8)
    assert nesting_depth(json.dumps(document)) == depth_by_walk(document)


def test_deep_large_and_broken_files_are_refused_naming_the_file(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(JSONFileError, match=rf"{deep}: refused: JSON nested 100000 levels deep \(at most 64\)"):
        read_json(deep)
    large = tmp_path / "large.json"
    large.write_text(json.dumps(["x" * 1000] * 100))
    with pytest.raises(JSONFileError, match=rf"{large}: refused: .* more than the 1000 bytes"):
        read_json(large, max_bytes=1000)
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"a": \xff}')
    with pytest.raises(JSONFileError, match=rf"{broken}: not valid JSON: not UTF-8"):
        read_json(broken)
    fine = tmp_path / "fine.json"
    fine.write_text('{"a": [1, "]]]"]}')
    assert read_json(fine) == {"a": [1, "]]]"]}


def test_a_study_file_nested_too_deeply_is_a_study_error(tmp_path):
    (tmp_path / STUDY_FILE).write_text('{"title": ' + "[" * 100_000 + "]" * 100_000 + "}")
    # one problem: one line, the file first
    with pytest.raises(StudyError, match=r"^\S*study.json: refused: JSON nested 100001 levels deep"):
        load_study(tmp_path)


def test_a_run_file_nested_too_deeply_is_named(tmp_path):
    run = fake_run(tmp_path)
    (run / "run.json").write_text('{"methods": ["imac", "s2g"], "config": ' + "{\"a\": " * 5000 + "1" + "}" * 5001)
    with pytest.raises(StudyError, match=r"run.json: refused: JSON nested 5001 levels deep"):
        make_study_from_run(tmp_path / "study", run)


def test_an_integer_longer_than_100_digits_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "study.json"
    path.write_text('{"seed": ' + "9" * 5000 + "}")
    with pytest.raises(JSONFileError) as error:
        read_json(path)
    assert str(error.value) == f"{path}: refused: an integer of 5000 digits (at most 100 are read)"
    path.write_text('{"seed": ' + "9" * 100 + ', "n": -12}')
    assert read_json(path) == {"seed": 10 ** 100 - 1, "n": -12}
