"""Importing SMPL-X fits: joint layout, PCA hands, file formats, frame checks and safe unpickling."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from metrics.dataset import EXPRESSION_DIM, ClipRecord, check_clip
from bench.data.prepare.motion import (
    JOINT_PRESETS,
    SMPLX_JOINT_NAMES,
    HandPCA,
    MotionFrameMismatch,
    MotionImportError,
    expand_hand_pca,
    find_motion_file,
    fit_to_motion,
    import_motion,
    load_fit,
    load_smplx_hand_pca,
)
from bench.data.toy import body

F = 6
PCA_COMPONENTS = 12


# -- fixtures: a SHOW-style fit and a fake SMPL-X model ------------------------------------------------


def _show_fit(rng: np.random.Generator, frames: int = F, expression_dim: int = 100) -> dict:
    """A fit laid out like SHOW's final_all.pkl: PCA hands, (F, 21, 3) body, extra keys."""
    return {
        "global_orient": rng.normal(size=(frames, 3)),
        "body_pose_axis": rng.normal(size=(frames, 21, 3)),
        "jaw_pose": rng.normal(size=(frames, 3)),
        "leye_pose": rng.normal(size=(frames, 3)),
        "reye_pose": rng.normal(size=(frames, 3)),
        "left_hand_pose": rng.normal(size=(frames, PCA_COMPONENTS)),
        "right_hand_pose": rng.normal(size=(frames, PCA_COMPONENTS)),
        "expression": rng.normal(size=(frames, expression_dim)),
        "betas": rng.normal(size=300),
        "transl": rng.normal(size=(frames, 3)),
        "pose_embedding": rng.normal(size=(frames, 32)),
        "width": 1920, "height": 1080, "focal_length": 5000.0, "batch_size": frames,
        "center": [960.0, 540.0], "camera_transl": [0.0, 0.0, 0.0],
    }


def _write_pickle(path: Path, obj: object) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)
    return path


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A fake SMPL-X model npz with orthonormal hand components and random means (plus noise keys)."""
    rng = np.random.default_rng(7)
    arrays = {
        "hands_componentsl": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_componentsr": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_meanl": rng.normal(size=45),
        "hands_meanr": rng.normal(size=45),
        "shapedirs": rng.normal(size=(10, 3, 4)),
    }
    path = tmp_path / "SMPLX_FAKE.npz"
    np.savez(path, **arrays)
    return path, arrays


def _expected_hand(coeffs: np.ndarray, components: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """(F, 15, 3) hand rotations computed frame by frame, component by component."""
    out = np.zeros((len(coeffs), 15, 3))
    for frame in range(len(coeffs)):
        flat = np.zeros(45) if mean is None else mean.copy()
        for c in range(coeffs.shape[1]):
            flat += coeffs[frame, c] * components[c]
        out[frame] = flat.reshape(15, 3)
    return out


def _column(names: tuple[str, ...], joint: str) -> slice:
    i = names.index(joint)
    return slice(3 * i, 3 * i + 3)


# -- joint layout ----------------------------------------------------------------------------------


def test_upper_preset_is_the_toy_body_joint_order():
    assert JOINT_PRESETS["upper"] == tuple(body.POSED_JOINT_NAMES)
    assert 3 * len(JOINT_PRESETS["upper"]) == body.NUM_POSE_PARAMS == 129


def test_smplx_joint_names_follow_smplx_order():
    assert len(SMPLX_JOINT_NAMES) == 55 == len(set(SMPLX_JOINT_NAMES))
    assert SMPLX_JOINT_NAMES.index("left_wrist") == 20
    assert SMPLX_JOINT_NAMES.index("jaw") == 22
    assert SMPLX_JOINT_NAMES.index("left_index1") == 25
    assert SMPLX_JOINT_NAMES.index("right_index1") == 40
    assert SMPLX_JOINT_NAMES[39] == "left_thumb3" and SMPLX_JOINT_NAMES[54] == "right_thumb3"
    assert (SMPLX_JOINT_NAMES.index("spine1"), SMPLX_JOINT_NAMES.index("neck")) == (3, 12)


def test_preset_sizes():
    assert JOINT_PRESETS["upper+jaw"] == JOINT_PRESETS["upper"] + ("jaw",)
    assert JOINT_PRESETS["all"] == SMPLX_JOINT_NAMES[1:]
    assert [3 * len(JOINT_PRESETS[p]) for p in ("upper", "upper+jaw", "all")] == [129, 132, 162]


# -- SHOW pkl with PCA hands -----------------------------------------------------------------------


def test_show_pkl_expands_pca_hands_and_places_body_joints(tmp_path, model):
    model_path, arrays = model
    rng = np.random.default_rng(0)
    fit = _show_fit(rng)
    fit_path = _write_pickle(tmp_path / "clip.pkl", [fit])   # SHOW wraps the dict in a list
    out = tmp_path / "out" / "clip.motion.npz"

    result = import_motion(fit_path, F, out, hand_pca=load_smplx_hand_pca(model_path))

    assert (result.frames_in_file, result.frames_written, result.trimmed_frames) == (F, F, 0)
    assert result.expression_coefficients == 100
    assert (result.joints, result.source) == ("upper", str(fit_path))
    with np.load(out, allow_pickle=False) as npz:
        pose, expression = npz["pose"], npz["expression"]
        names = tuple(str(name) for name in npz["joint_names"])
    assert names == JOINT_PRESETS["upper"]
    left = _expected_hand(fit["left_hand_pose"], arrays["hands_componentsl"], arrays["hands_meanl"])
    right = _expected_hand(fit["right_hand_pose"], arrays["hands_componentsr"], arrays["hands_meanr"])
    for joint, expected in (("left_index1", left[:, 0]), ("left_thumb3", left[:, 14]),
                            ("right_pinky2", right[:, 7])):
        np.testing.assert_allclose(pose[:, _column(names, joint)], expected, rtol=1e-5, atol=1e-5)
    # body_pose_axis row j-1 is SMPL-X joint j: spine1 = 3, neck = 12, right_wrist = 21.
    for joint, smplx_index in (("spine1", 3), ("neck", 12), ("right_wrist", 21)):
        np.testing.assert_allclose(pose[:, _column(names, joint)],
                                   fit["body_pose_axis"][:, smplx_index - 1], rtol=1e-6)
    np.testing.assert_allclose(expression, fit["expression"], rtol=1e-6)


def test_flat_hand_mean_leaves_out_the_mean(model):
    model_path, arrays = model
    fit = _show_fit(np.random.default_rng(1))
    pose, _, names = fit_to_motion(fit, hand_pca=model_path, flat_hand_mean=True)
    expected = _expected_hand(fit["left_hand_pose"], arrays["hands_componentsl"], None)
    np.testing.assert_allclose(pose[:, _column(names, "left_middle1")], expected[:, 3],
                               rtol=1e-5, atol=1e-5)
    with_mean, _, _ = fit_to_motion(fit, hand_pca=model_path)
    difference = with_mean - pose
    np.testing.assert_allclose(difference[:, _column(names, "left_middle1")],
                               np.broadcast_to(arrays["hands_meanl"][9:12], (F, 3)),
                               rtol=1e-5, atol=1e-5)


def test_pca_hands_without_a_model_ask_for_it(tmp_path):
    fit_path = _write_pickle(tmp_path / "clip.pkl", _show_fit(np.random.default_rng(2)))
    with pytest.raises(MotionImportError, match="--smplx-model") as error:
        import_motion(fit_path, F, tmp_path / "out.npz")
    assert "12 PCA coefficients" in str(error.value) and "left_hand_pose" in str(error.value)
    assert not (tmp_path / "out.npz").exists()


def test_expand_hand_pca_checks_shapes():
    components = np.eye(45)
    expanded = expand_hand_pca(np.ones((2, 3)), components, None)
    np.testing.assert_allclose(expanded[:, :4], [[1, 1, 1, 0]] * 2)
    with pytest.raises(MotionImportError, match="only 45 components"):
        expand_hand_pca(np.ones((2, 46)), components)
    with pytest.raises(MotionImportError, match=r"expected \(N, 45\)"):
        expand_hand_pca(np.ones((2, 3)), np.eye(44))


def test_model_missing_a_hand_key_names_it(tmp_path, model):
    _, arrays = model
    path = tmp_path / "broken_model.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if k != "hands_meanr"})
    with pytest.raises(MotionImportError, match="hands_meanr") as error:
        load_smplx_hand_pca(path)
    assert str(path) in str(error.value)


def test_model_pkl_variant_is_read(tmp_path, model):
    _, arrays = model
    pca = load_smplx_hand_pca(_write_pickle(tmp_path / "model.pkl", dict(arrays)))
    assert isinstance(pca, HandPCA)
    np.testing.assert_array_equal(pca.right_components, arrays["hands_componentsr"])


# -- other layouts ---------------------------------------------------------------------------------


def test_npz_with_full_poses_selects_the_preset(tmp_path):
    rng = np.random.default_rng(3)
    poses = rng.normal(size=(F, 165))
    fit_path = tmp_path / "clip.npz"
    np.savez(fit_path, poses=poses, expression=rng.normal(size=(F, 100)), trans=rng.normal(size=(F, 3)))

    pose_all, _, names_all = fit_to_motion(load_fit(fit_path), joints="all")
    np.testing.assert_allclose(pose_all, poses[:, 3:], rtol=1e-6)
    assert names_all == SMPLX_JOINT_NAMES[1:]

    pose, _, names = fit_to_motion(load_fit(fit_path), joints="upper+jaw")
    by_joint = poses.reshape(F, 55, 3)
    for i, name in enumerate(names):
        expected = by_joint[:, SMPLX_JOINT_NAMES.index(name)]
        np.testing.assert_allclose(pose[:, 3 * i:3 * i + 3], expected, rtol=1e-6)


def test_full_axis_angle_hands_and_lists_are_taken_as_is(tmp_path):
    rng = np.random.default_rng(4)
    fit = {"body_pose": rng.normal(size=(F, 63)).tolist(),
           "left_hand_pose": rng.normal(size=(F, 15, 3)), "right_hand_pose": rng.normal(size=(F, 45)),
           "expression": rng.normal(size=(F, 100)).tolist()}
    pose, _, names = fit_to_motion(load_fit(_write_pickle(tmp_path / "c.pkl", fit)))
    np.testing.assert_allclose(pose[:, _column(names, "left_ring2")], fit["left_hand_pose"][:, 10],
                               rtol=1e-6)
    np.testing.assert_allclose(pose[:, _column(names, "right_index1")], fit["right_hand_pose"][:, :3],
                               rtol=1e-6)


def test_short_expression_is_zero_padded_and_counted(tmp_path, model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(5), expression_dim=50)
    fit_path = _write_pickle(tmp_path / "clip.pkl", fit)
    result = import_motion(fit_path, F, tmp_path / "out.npz", hand_pca=model_path)
    assert result.expression_coefficients == 50
    with np.load(tmp_path / "out.npz") as npz:
        expression = npz["expression"]
    assert expression.shape == (F, 100)
    np.testing.assert_allclose(expression[:, :50], fit["expression"], rtol=1e-6)
    assert not expression[:, 50:].any()


def test_expression_missing_or_too_long_is_an_error(model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(6), expression_dim=101)
    with pytest.raises(MotionImportError, match="101 coefficients"):
        fit_to_motion(fit, hand_pca=model_path)
    del fit["expression"]
    with pytest.raises(MotionImportError, match="no 'expression'"):
        fit_to_motion(fit, hand_pca=model_path)


def test_missing_key_is_an_error_only_when_the_preset_needs_it(model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(8))
    del fit["jaw_pose"], fit["leye_pose"], fit["global_orient"]
    pose, _, _ = fit_to_motion(fit, joints="upper", hand_pca=model_path)
    assert pose.shape == (F, 129)
    with pytest.raises(MotionImportError, match="'jaw_pose'"):
        fit_to_motion(fit, joints="upper+jaw", hand_pca=model_path)
    with pytest.raises(MotionImportError, match="'jaw_pose'.*'leye_pose'") as error:
        fit_to_motion(fit, joints="all", hand_pca=model_path)
    assert "global_orient" not in str(error.value)  # the pelvis is in no preset


# -- validation ------------------------------------------------------------------------------------


def test_nan_names_the_key_and_frame(tmp_path, model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(9))
    fit["body_pose_axis"][4, 2, 1] = np.nan
    fit_path = _write_pickle(tmp_path / "clip.pkl", fit)
    with pytest.raises(MotionImportError, match=r"'body_pose_axis'.*frame 4") as error:
        import_motion(fit_path, F, tmp_path / "out.npz", hand_pca=model_path)
    assert str(fit_path) in str(error.value)


def test_disagreeing_frame_counts_name_the_keys(model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(10))
    fit["jaw_pose"] = fit["jaw_pose"][:-1]
    with pytest.raises(MotionImportError, match="disagree on the number of frames") as error:
        fit_to_motion(fit, hand_pca=model_path, source="clip.pkl")
    message = str(error.value)
    assert message.startswith("clip.pkl: ")
    assert f"'jaw_pose': {F - 1}" in message and f"'body_pose_axis': {F}" in message


def test_wrong_trailing_shape_is_an_error(model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(11))
    fit["body_pose_axis"] = fit["body_pose_axis"][:, :20]
    with pytest.raises(MotionImportError, match=r"'body_pose_axis' has shape \(6, 20, 3\)"):
        fit_to_motion(fit, hand_pca=model_path)


def test_unsupported_suffix_names_the_file(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text("{}")
    with pytest.raises(MotionImportError, match="clip.json"):
        load_fit(path)


# -- frame counts against the video ----------------------------------------------------------------


def test_fewer_motion_frames_than_video_frames_is_a_mismatch(tmp_path, model):
    model_path, _ = model
    fit_path = _write_pickle(tmp_path / "clip.pkl", _show_fit(np.random.default_rng(12), frames=118))
    with pytest.raises(MotionFrameMismatch, match="118 motion frames, the clip has 120 video frames"):
        import_motion(fit_path, 120, tmp_path / "out.npz", hand_pca=model_path, frame_tolerance=5)
    assert not (tmp_path / "out.npz").exists()


def test_extra_frames_within_tolerance_are_trimmed(tmp_path, model):
    model_path, _ = model
    fit = _show_fit(np.random.default_rng(13), frames=F + 2)
    fit_path = _write_pickle(tmp_path / "clip.pkl", fit)
    result = import_motion(fit_path, F, tmp_path / "out.npz", hand_pca=model_path, frame_tolerance=2)
    assert (result.frames_in_file, result.frames_written, result.trimmed_frames) == (F + 2, F, 2)
    with np.load(tmp_path / "out.npz") as npz:
        np.testing.assert_allclose(npz["expression"], fit["expression"][:F], rtol=1e-6)


def test_extra_frames_beyond_tolerance_are_a_mismatch(tmp_path, model):
    model_path, _ = model
    fit_path = _write_pickle(tmp_path / "clip.pkl", _show_fit(np.random.default_rng(14), frames=F + 3))
    message = f"{F + 3} motion frames, the clip has {F} video frames"
    with pytest.raises(MotionFrameMismatch, match=message):
        import_motion(fit_path, F, tmp_path / "out.npz", hand_pca=model_path, frame_tolerance=2)


# -- safe unpickling -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol, numpy1_names",
                         [(0, False), (2, False), (5, False), (0, True), (2, True)])
def test_numpy_pickles_of_any_protocol_are_read(tmp_path, protocol, numpy1_names):
    fit = {"body_pose": np.arange(F * 63, dtype=np.float32).reshape(F, 63),
           "expression": np.full((F, 3), 0.5), "width": np.int64(4), "betas": (1.0, 2),
           "center": {"x": [1 + 2j]}, "name": "clip", "raw": b"\x00\xff"}
    data = pickle.dumps(fit, protocol=protocol)
    if numpy1_names:
        data = data.replace(b"numpy._core.", b"numpy.core.")  # how numpy 1.x pickles name them
    path = tmp_path / "clip.pkl"
    path.write_bytes(data)
    loaded = load_fit(path)
    assert set(loaded) == {"body_pose", "expression"}
    np.testing.assert_array_equal(loaded["body_pose"], fit["body_pose"])


def _create_marker(path: str) -> None:
    Path(path).write_text("executed")


class _Payload:
    """Pickles as a call of ``function(*args)``: what a malicious pickle does on load."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize("make_payload", [
    lambda marker: _Payload(_create_marker, (str(marker),)),
    lambda marker: _Payload(os.system, (f"touch {marker}",)),
    lambda marker: _Payload(eval, (f"open({str(marker)!r}, 'w')",)),
], ids=["module-function", "os.system", "builtins.eval"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, make_payload):
    marker = tmp_path / "marker"
    fit = {"expression": np.zeros((F, 100)), "body_pose": make_payload(marker)}
    fit_path = _write_pickle(tmp_path / "evil.pkl", fit)
    with pytest.raises(MotionImportError, match="forbidden object type") as error:
        load_fit(fit_path)
    assert "npz" in str(error.value) and str(fit_path) in str(error.value)
    assert not marker.exists()


# -- finding files and the written npz -------------------------------------------------------------


def test_find_motion_file_layouts_and_precedence(tmp_path):
    assert find_motion_file(tmp_path, "c1") is None
    deepest = tmp_path / "c1" / "ours_exp" / "final_all.pkl"
    deepest.parent.mkdir(parents=True)
    deepest.write_bytes(b"")
    assert find_motion_file(tmp_path, "c1") == deepest
    show_folder = tmp_path / "c1" / "final_all.pkl"
    show_folder.write_bytes(b"")
    assert find_motion_file(tmp_path, "c1") == show_folder
    (tmp_path / "c1.pkl").write_bytes(b"")
    assert find_motion_file(tmp_path, "c1") == tmp_path / "c1.pkl"
    (tmp_path / "c1.npz").write_bytes(b"")
    assert find_motion_file(tmp_path, "c1") == tmp_path / "c1.npz"
    assert find_motion_file(tmp_path, "c2") is None


def test_motion_help_names_every_layout_in_order():
    """The --motion help lists the four layouts the finder tries (above), in its order; it once
    named two of them (the report's next step, from the same text, three)."""
    import argparse
    from bench.data.prepare.cli import add_prepare_arguments

    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    help_text = " ".join(next(a.help for a in parser._actions if "--motion" in a.option_strings).split())
    layouts = ["DIR/<clip_id>.npz", "DIR/<clip_id>.pkl", "DIR/<clip_id>/final_all.pkl",
               "DIR/<clip_id>/ours_exp/final_all.pkl"]
    positions = [help_text.find(layout + ",") if i < 3 else help_text.find(layout + " ")
                 for i, layout in enumerate(layouts)]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), help_text


def test_written_npz_passes_the_manifest_motion_check(tmp_path, model):
    model_path, _ = model
    fit_path = _write_pickle(tmp_path / "clip.pkl", _show_fit(np.random.default_rng(15)))
    out = tmp_path / "alice" / "clip.motion.npz"
    import_motion(fit_path, F, out, hand_pca=model_path)
    with np.load(out, allow_pickle=False) as npz:
        assert npz["pose"].dtype == np.float32 and npz["pose"].shape == (F, 129)
        assert npz["expression"].dtype == np.float32 and npz["expression"].shape == (F, EXPRESSION_DIM)
        assert npz["joint_names"].dtype.kind == "U" and len(npz["joint_names"]) == 43
    record = ClipRecord(identity="alice", split="train", clip_id="clip", video=tmp_path / "v.mp4",
                        audio=tmp_path / "a.wav", motion=out, fps=25.0, num_frames=F,
                        width=64, height=64)
    assert [problem for problem in check_clip(record, "full") if problem.field == "motion"] == []
