"""With on_error="skip" (``--skip-bad``), a bad clip is skipped and listed, but an error of a network
or its file (the I3D archive, the skeleton autoencoder) stops the run naming the file: skipping every
clip because the network is broken would turn a broken weight file into an empty result."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("error_type", ["I3DNetworkError", "AutoencoderFileError"])
def test_skipping_bad_clips_never_skips_a_networks_error(tmp_path, error_type):
    from metrics import evaluate
    from metrics.dataset import ClipRecord
    from metrics.pose.toy import ToyMarkerPose
    from metrics.protocol import Protocol
    network_error = getattr(evaluate, error_type)
    clips = [ClipRecord("anna", "test", f"c{i}", video=tmp_path / f"c{i}.mp4") for i in range(3)]
    evaluator = evaluate.Evaluator(("bas",), Protocol(), extractor=ToyMarkerPose())
    failures = {"c0": ValueError(f"{clips[0].video}: too short"), "c2": OSError(f"{clips[2].video}: unreadable")}

    def record(clip, side, partner=None, hints=None):
        if clip.clip_id in failures:
            raise failures[clip.clip_id]
        return evaluate.ClipResult(clip, side, 25.0, (16, 16))

    evaluator.record = record
    records, skipped = evaluator.records(clips, "fake", on_error="skip")
    assert [r.clip.clip_id for r in records] == ["c1"]
    assert [(s.clip, s.reason) for s in skipped] == [("anna/c0", str(failures["c0"])), ("anna/c2", str(failures["c2"]))]
    failures["c1"] = network_error("/weights/i3d.pt: the I3D archive returned (1, 10)")
    with pytest.raises(network_error, match="^/weights/i3d.pt: "):
        evaluator.records(clips, "fake", on_error="skip")
