"""A DWPose ONNX model that fails while running is the model's fault, not the clip's: it raises
``DWPoseModelError`` naming the file, and ``--skip-bad`` (on_error="skip") stops the run with it
instead of listing every clip as bad."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_dwpose import detector_outputs, frame, write_pose, write_probe_model


def write_detector_failing_on_batches_of_3(path):
    """A detector with a dynamic batch whose constant part has batch 2: onnxruntime runs it on 1 or
    2 frames and fails on 3 (an axis of 3 cannot broadcast against 2), the error met at run time."""
    base, mask = detector_outputs()
    return write_probe_model(path, ("N", 3, 640, 640), [{
        "name": "output", "base": np.concatenate([base, base]), "mask": mask, "pixel": (0, 0, 0),
        "factor": 1 / 255, "shape": ("N",) + base.shape[1:]}])


def test_a_model_failing_while_running_stops_a_run_that_skips_bad_clips(tmp_path):
    from metrics import evaluate
    from metrics.dataset import ClipRecord
    from metrics.pose.dwpose import DWPose, DWPoseModelError
    from metrics.protocol import Protocol
    detector = write_detector_failing_on_batches_of_3(tmp_path / "det.onnx")
    extractor = DWPose(detector, write_pose(tmp_path / "pose.onnx"), providers=["CPUExecutionProvider"],
                       batch_size=3)
    frames = np.stack([frame((120, 80, 40), 64, 64)] * 3)
    assert extractor(frames[:2]).shape == (2, 133, 3)           # the model loads and runs on 2 frames
    with pytest.raises(DWPoseModelError, match=f"^{detector}: the DWPose model failed on an input of shape "):
        extractor(frames)
    assert issubclass(DWPoseModelError, ValueError) and DWPoseModelError in evaluate.NETWORK_ERRORS

    clips = [ClipRecord("anna", "test", f"c{i}", video=tmp_path / f"c{i}.mp4") for i in range(2)]
    evaluator = evaluate.Evaluator(("bas",), Protocol(), extractor=extractor)

    def record(clip, side, partner=None, hints=None):
        if clip.clip_id == "c0":
            raise ValueError(f"{clip.video}: too short")        # a bad clip: skipped and listed
        extractor(frames)
        return evaluate.ClipResult(clip, side, 25.0, (64, 64))

    evaluator.record = record
    with pytest.raises(DWPoseModelError, match=f"^{detector}: "):
        evaluator.records(clips, "fake", on_error="skip")
