"""Ids that name output files: two clips (or two files of an external method) that would become one
file on a case-insensitive file system are refused with both names, never a silent overwrite."""

from __future__ import annotations

import json
import unicodedata

import pytest

from metrics.dataset import DatasetError, read_manifest


def _line(identity: str, clip_id: str) -> dict:
    return {"identity": identity, "split": "test", "clip_id": clip_id, "video": f"v/{clip_id}.mp4",
            "audio": f"a/{clip_id}.wav", "motion": f"m/{clip_id}.npz", "fps": 25, "num_frames": 10,
            "width": 64, "height": 64}


def _manifest(folder, pairs) -> None:
    (folder / "manifest.jsonl").write_text("".join(json.dumps(_line(*pair)) + "\n" for pair in pairs))


@pytest.mark.parametrize("first, second", [(("anna", "Clip1"), ("anna", "clip1")),
                                           (("Anna", "c0"), ("anna", "c0")),
                                           (("anna", "caf\u00e9"), ("anna", "cafe\u0301")),   # NFC / NFD
                                           (("anna", "STRASSE"), ("anna", "stra\u00dfe"))],
                         ids=["clip_case", "identity_case", "normalisation", "casefold"])
def test_clip_ids_that_are_one_file_on_a_case_insensitive_system_are_refused(tmp_path, first, second):
    _manifest(tmp_path, [first, ("bob", "c0"), second])
    with pytest.raises(DatasetError) as raised:
        read_manifest(tmp_path)
    (problem,) = raised.value.problems
    assert problem.field == "clip_id"
    assert f"'{first[0]}/{first[1]}' (manifest.jsonl line 1)" in problem.message
    assert f"'{second[0]}/{second[1]}' (manifest.jsonl line 3)" in problem.message
    # the reference: macOS's default APFS compares names case- and normalisation-insensitively
    fold = [unicodedata.normalize("NFD", "/".join(pair)).casefold() for pair in (first, second)]
    assert unicodedata.normalize("NFC", fold[0]) == unicodedata.normalize("NFC", fold[1])


def test_ids_that_differ_in_more_than_case_are_kept(tmp_path):
    pairs = [("anna", "clip1"), ("anna", "clip_1"), ("anna", "clip1a"), ("anna2", "clip1"), ("bob", "Clip1")]
    _manifest(tmp_path, pairs)
    assert [record.key for record in read_manifest(tmp_path)] == pairs


@pytest.mark.parametrize("identity, clip_id", [("anna", "a/b"), ("anna", "..\\x"), ("..", "c0"), ("anna", ".")])
def test_ids_that_are_not_one_file_name_are_refused(tmp_path, identity, clip_id):
    _manifest(tmp_path, [(identity, clip_id)])
    with pytest.raises(DatasetError, match="cannot name a file"):
        read_manifest(tmp_path)
