"""Importing per-clip SMPL-X fits (SHOW, TalkSHOW, AMASS-style) into the project's motion npz.

The project's motion npz (see ``metrics.dataset``) holds ``pose`` (F, 3J) float32 axis-angle,
``expression`` (F, 100) float32 and ``joint_names`` (J,) str. This module reads one SMPL-X fit
per clip, turns it into the full 55-joint SMPL-X axis-angle pose, keeps the joints of a preset
and writes the npz, checking the frame count against the clip's video.

Where a clip's fit is looked for (``find_motion_file``), first match wins:

1. ``<motion_dir>/<clip_id>.npz``
2. ``<motion_dir>/<clip_id>.pkl``
3. ``<motion_dir>/<clip_id>/final_all.pkl``          (SHOW's output folder per clip)
4. ``<motion_dir>/<clip_id>/ours_exp/final_all.pkl`` (the same, one level deeper)

Accepted files (``load_fit``):

- ``.pkl``: SHOW's ``final_all.pkl`` or a TalkSHOW/SHOW dataset per-sequence pkl: a dict, or a
  list whose first element is such a dict. Values may be numpy arrays, lists or floats. Pickles
  are read with a restricted unpickler that only rebuilds numpy arrays, numpy scalars and plain
  containers (dict, list, tuple, set, str, numbers, ``collections.OrderedDict``); any other
  object (a torch tensor, a custom class, ``os.system``...) is refused without being created.
  Convert such a file to npz first (``np.savez(out, **{k: v.numpy() ...})``).
- ``.npz``: the same key names, or AMASS/SMPL-X style ``poses`` (F, 165) = 55 joints x 3 in
  SMPL-X order (which then defines every joint; the per-part pose keys are ignored), with
  ``expression`` (F, k). Read without pickle.

Recognised keys (F frames; other keys such as ``betas``, ``transl``, ``width``, ``height``,
``center``, ``focal_length``, ``camera_transl``, ``batch_size``, ``pose_embedding`` are ignored):

- ``global_orient`` (F, 3) or (F, 1, 3): the pelvis (joint 0).
- ``body_pose_axis`` (SHOW's name) or ``body_pose``: (F, 63) or (F, 21, 3), joints 1..21. When
  both are present ``body_pose_axis`` is used (in SHOW ``body_pose`` may be something else).
- ``jaw_pose``, ``leye_pose``, ``reye_pose``: (F, 3) or (F, 1, 3), joints 22, 23, 24.
- ``left_hand_pose``, ``right_hand_pose``: joints 25..39 and 40..54, either full axis-angle
  (F, 45) or (F, 15, 3), taken as the final rotations, or k < 45 PCA coefficients (F, k).
  SHOW fits with ``use_pca=True, num_pca_comps=12, flat_hand_mean=False``: 12 coefficients per
  hand, expanded as ``coeffs @ components[:12] + mean`` with the hand components and mean of
  the SMPL-X model file (``load_smplx_hand_pca``; licensed, never shipped: pass
  ``--smplx-model SMPLX_NEUTRAL_2020.npz``). ``flat_hand_mean=True`` leaves the mean out.
- ``expression`` (or ``expressions``): (F, k) with k <= 100 coefficients; fewer than 100 are
  zero-padded, which is exact since SMPL-X's unused expression coefficients are zero.

A pose key whose joints the chosen preset does not use may be missing (its joints are zeros); a
missing key the preset needs is an error naming it. Every used array must have the same frame
count, the expected trailing shape and only finite values.

Joint presets (``JOINT_PRESETS``): ``"upper"``, the 43 upper-body and finger joints of
``bench.data.toy.body.POSED_JOINT_NAMES`` (129 values a frame); ``"upper+jaw"``, those and the jaw
(132); ``"all"``, the 54 SMPL-X joints after the pelvis (162).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.prepare.safe_pickle import PickleReadError, load_pickle
from metrics.io.bounded import BoundedReadError, load_npz
from metrics.io.files import save_npz_atomic

EXPRESSION_DIM = 100
HAND_JOINTS = 15
HAND_POSE_DIM = 3 * HAND_JOINTS  # 45
NUM_SMPLX_JOINTS = 55
SMPLX_MODEL_HINT = "--smplx-model SMPLX_NEUTRAL_2020.npz"

FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X order of each hand's joints


def _hand_joint_names(side: str) -> tuple[str, ...]:
    """The 15 finger joints of one hand in SMPL-X order: ``left_index1`` ... ``left_thumb3``."""
    return tuple(f"{side}_{finger}{level}" for finger in FINGERS for level in (1, 2, 3))


SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
) + _hand_joint_names("left") + _hand_joint_names("right")

_UPPER_BODY: tuple[str, ...] = (
    "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
_UPPER = _UPPER_BODY + _hand_joint_names("left") + _hand_joint_names("right")

JOINT_PRESETS: dict[str, tuple[str, ...]] = {
    "upper": _UPPER,
    "upper+jaw": _UPPER + ("jaw",),
    "all": SMPLX_JOINT_NAMES[1:],
}

_JOINT_INDEX = {name: index for index, name in enumerate(SMPLX_JOINT_NAMES)}


class MotionImportError(ValueError):
    """A fit file that cannot be turned into a motion npz; the message names the file and field."""


class MotionFrameMismatch(MotionImportError):
    """The fit's frame count does not match the clip's video (beyond the allowed tolerance)."""


# -- the parts of an SMPL-X fit --------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One pose key of a fit: the names it may go by (preferred first) and the joints it sets."""

    name: str
    keys: tuple[str, ...]
    first_joint: int
    num_joints: int
    hand: str | None = None   # "left" / "right" for the hand parts, which may hold PCA coefficients

    @property
    def joints(self) -> range:
        return range(self.first_joint, self.first_joint + self.num_joints)


_PARTS: tuple[_Part, ...] = (
    _Part("global_orient", ("global_orient",), 0, 1),
    _Part("body_pose", ("body_pose_axis", "body_pose"), 1, 21),
    _Part("jaw_pose", ("jaw_pose",), 22, 1),
    _Part("leye_pose", ("leye_pose",), 23, 1),
    _Part("reye_pose", ("reye_pose",), 24, 1),
    _Part("left_hand_pose", ("left_hand_pose",), 25, HAND_JOINTS, hand="left"),
    _Part("right_hand_pose", ("right_hand_pose",), 40, HAND_JOINTS, hand="right"),
)
FULL_POSE_KEY = "poses"
EXPRESSION_KEYS = ("expression", "expressions")
FIT_KEYS: tuple[str, ...] = tuple(key for part in _PARTS for key in part.keys) + (
    FULL_POSE_KEY,) + EXPRESSION_KEYS


def _load_pickle(path: Path) -> Any:
    """The object pickled in ``path``, read with the restricted unpickler (``safe_pickle``)."""
    try:
        return load_pickle(path)
    except PickleReadError as error:
        raise MotionImportError(str(error)) from error


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an npz file, read without pickle."""
    try:
        return load_npz(path)
    except BoundedReadError as error:
        raise MotionImportError(str(error)) from error
    except OSError as error:
        raise MotionImportError(f"{path}: cannot read the npz: {error}") from error


# -- reading fits ----------------------------------------------------------------------------------


def _float_array(value: Any, key: str, source: str) -> np.ndarray:
    """``value`` (array, list or number) as a float64 array; an error naming the key otherwise."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise MotionImportError(f"{source}: {key!r} is not a numeric array: {error}") from error
    if array.dtype.kind not in "biuf":
        raise MotionImportError(f"{source}: {key!r} has dtype {array.dtype}, expected numbers")
    return array.astype(np.float64)


def _fit_dict(content: Any, source: str) -> Mapping[str, Any]:
    """The dict of a loaded pickle: the object itself, or the first element of a list/tuple."""
    if isinstance(content, (list, tuple)):
        if not content:
            raise MotionImportError(f"{source}: the pickle holds an empty list, expected a fit dict")
        content = content[0]
    if not isinstance(content, Mapping):
        raise MotionImportError(f"{source}: the pickle holds a {type(content).__name__}, "
                                "expected a dict of SMPL-X parameters (or a list of them)")
    return content


def load_fit(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The recognised SMPL-X arrays of a ``.pkl`` or ``.npz`` fit, as float64 (see ``FIT_KEYS``).

    Other keys (betas, camera, translation...) are dropped. Shapes are checked later, by
    ``fit_to_motion``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        content: Mapping[str, Any] = _fit_dict(_load_pickle(path), str(path))
    elif suffix == ".npz":
        content = _load_npz(path)
    else:
        raise MotionImportError(f"{path}: unsupported motion file type {path.suffix!r}; "
                                "expected an SMPL-X fit as .pkl (SHOW/TalkSHOW) or .npz")
    fit = {str(key): _float_array(value, str(key), str(path))
           for key, value in content.items() if key in FIT_KEYS}
    if not fit:
        present = ", ".join(sorted(map(str, content))) or "none"
        raise MotionImportError(f"{path}: no SMPL-X pose or expression arrays (keys: {present}); "
                                f"expected some of {', '.join(FIT_KEYS)}")
    return fit


# -- hand PCA --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandPCA:
    """The SMPL-X model's hand PCA: components (N, 45) and mean (45,) of each hand."""

    left_components: np.ndarray
    right_components: np.ndarray
    left_mean: np.ndarray
    right_mean: np.ndarray

    def for_hand(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(components, mean) of ``side`` ("left" or "right")."""
        if side == "left":
            return self.left_components, self.left_mean
        if side == "right":
            return self.right_components, self.right_mean
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")


_HAND_PCA_KEYS = {"left_components": "hands_componentsl", "right_components": "hands_componentsr",
                  "left_mean": "hands_meanl", "right_mean": "hands_meanr"}


def _model_array(content: Mapping[str, Any], key: str, shape: tuple[int | None, ...],
                 source: str) -> np.ndarray:
    """``content[key]`` as float64, checked against ``shape`` (None: any size)."""
    if key not in content:
        raise MotionImportError(f"{source}: the SMPL-X model has no {key!r} "
                                "(is this an SMPL-X model file, e.g. SMPLX_NEUTRAL_2020.npz?)")
    array = _float_array(content[key], key, source)
    if array.ndim != len(shape) or any(want is not None and got != want
                                       for got, want in zip(array.shape, shape)):
        expected = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"
        raise MotionImportError(f"{source}: {key!r} has shape {array.shape}, expected {expected}")
    return array


def load_smplx_hand_pca(path: str | os.PathLike) -> HandPCA:
    """The hand PCA of an SMPL-X model file: ``.npz`` (or ``.pkl``, through the restricted unpickler).

    Reads ``hands_componentsl``/``hands_componentsr`` (N, 45) and ``hands_meanl``/``hands_meanr``
    (45,). The model is the user's licensed file; it is never shipped with the project.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            # Only the four hand arrays: other entries of some model files are object arrays.
            content: Mapping[str, Any] = load_npz(path, (), optional=_HAND_PCA_KEYS.values())
        except (BoundedReadError, OSError) as error:
            raise MotionImportError(f"{path}: cannot read the SMPL-X model npz: {error}") from error
    elif suffix == ".pkl":
        content = _load_pickle(path)
        if not isinstance(content, Mapping):
            raise MotionImportError(f"{path}: the SMPL-X model pickle holds a "
                                    f"{type(content).__name__}, expected a dict")
    else:
        raise MotionImportError(f"{path}: unsupported SMPL-X model file type {path.suffix!r}; "
                                "expected .npz (e.g. SMPLX_NEUTRAL_2020.npz)")
    arrays = {field: _model_array(content, key, (None, HAND_POSE_DIM) if "components" in field
                                  else (HAND_POSE_DIM,), str(path))
              for field, key in _HAND_PCA_KEYS.items()}
    return HandPCA(**arrays)


def expand_hand_pca(coeffs: np.ndarray, components: np.ndarray,
                    mean: np.ndarray | None = None) -> np.ndarray:
    """Hand axis-angle (F, 45) from PCA coefficients (F, k): ``coeffs @ components[:k] + mean``.

    ``components`` (>= k, 45) and ``mean`` (45,) come from the SMPL-X model; ``mean=None`` is the
    ``flat_hand_mean=True`` convention (no mean added).
    """
    coeffs, components = np.asarray(coeffs, dtype=np.float64), np.asarray(components, dtype=np.float64)
    if coeffs.ndim != 2:
        raise MotionImportError(f"hand PCA coefficients have shape {coeffs.shape}, expected (F, k)")
    if components.ndim != 2 or components.shape[1] != HAND_POSE_DIM:
        raise MotionImportError(f"hand PCA components have shape {components.shape}, "
                                f"expected (N, {HAND_POSE_DIM})")
    k = coeffs.shape[1]
    if k > components.shape[0]:
        raise MotionImportError(f"{k} hand PCA coefficients per frame but the model has only "
                                f"{components.shape[0]} components")
    pose = coeffs @ components[:k]
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (HAND_POSE_DIM,):
            raise MotionImportError(f"hand PCA mean has shape {mean.shape}, "
                                    f"expected ({HAND_POSE_DIM},)")
        pose = pose + mean
    return pose


def _resolve_hand_pca(hand_pca: HandPCA | str | os.PathLike | None) -> HandPCA | None:
    """A ``HandPCA``, loading it when given the path of an SMPL-X model."""
    if hand_pca is None or isinstance(hand_pca, HandPCA):
        return hand_pca
    return load_smplx_hand_pca(hand_pca)


# -- assembling the pose ---------------------------------------------------------------------------


def _check_frames(arrays: Mapping[str, np.ndarray], source: str) -> int:
    """The common frame count of ``arrays`` (first axis); an error listing each when they differ."""
    counts = {key: (array.shape[0] if array.ndim else None) for key, array in arrays.items()}
    scalar = [key for key, count in counts.items() if count is None]
    if scalar:
        raise MotionImportError(f"{source}: {', '.join(map(repr, scalar))} is a single number, "
                                "expected one row per frame")
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{key!r}: {count}" for key, count in counts.items())
        raise MotionImportError(f"{source}: the arrays disagree on the number of frames ({listed})")
    num_frames = next(iter(counts.values()))
    if num_frames == 0:
        raise MotionImportError(f"{source}: the fit holds no frames")
    return num_frames


def _check_finite(key: str, array: np.ndarray, source: str) -> None:
    """An error naming ``key`` and its first frame with a NaN or inf value."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        raise MotionImportError(f"{source}: {key!r} has NaN or inf values "
                                f"({int(bad.sum())} frames, first at frame {int(np.argmax(bad))})")


def _joint_rotations(key: str, array: np.ndarray, num_joints: int, source: str) -> np.ndarray:
    """A (F, num_joints * 3) or (F, num_joints, 3) array as (F, num_joints, 3)."""
    if array.shape[1:] in ((3 * num_joints,), (num_joints, 3)):
        return array.reshape(len(array), num_joints, 3)
    raise MotionImportError(f"{source}: {key!r} has shape {array.shape}, expected "
                            f"(F, {3 * num_joints}) or (F, {num_joints}, 3)")


def _hand_rotations(key: str, array: np.ndarray, side: str, hand_pca: HandPCA | None,
                    flat_hand_mean: bool, source: str) -> np.ndarray:
    """One hand's (F, 15, 3) axis-angle from full axis-angle or PCA coefficients."""
    if array.ndim == 2 and 0 < array.shape[1] < HAND_POSE_DIM:
        k = array.shape[1]
        if hand_pca is None:
            raise MotionImportError(
                f"{source}: {key!r} holds {k} PCA coefficients per frame, not {HAND_POSE_DIM} "
                "axis-angle values. SHOW stores 12 PCA coefficients per hand; expanding them "
                f"needs the hand components of your SMPL-X model file: pass {SMPLX_MODEL_HINT}")
        components, mean = hand_pca.for_hand(side)
        if k > components.shape[0]:
            raise MotionImportError(f"{source}: {key!r} holds {k} PCA coefficients per frame but "
                                    f"the SMPL-X model has only {components.shape[0]} hand components")
        array = expand_hand_pca(array, components, None if flat_hand_mean else mean)
    return _joint_rotations(key, array, HAND_JOINTS, source)


def _preset_joints(joints: str) -> tuple[str, ...]:
    if joints not in JOINT_PRESETS:
        raise MotionImportError(f"unknown joint preset {joints!r}; expected one of "
                                f"{', '.join(JOINT_PRESETS)}")
    return JOINT_PRESETS[joints]


def _first_present(fit: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if key in fit), None)


@dataclass(frozen=True)
class _Motion:
    """The assembled motion of a fit, and how many expression coefficients were in the file."""

    pose: np.ndarray
    expression: np.ndarray
    joint_names: tuple[str, ...]
    expression_coefficients: int


def _used_arrays(fit: Mapping[str, Any], needed: set[int], source: str) -> dict[str, np.ndarray]:
    """The fit arrays that make the motion, by key; an error naming a needed key that is missing."""
    expression_key = _first_present(fit, EXPRESSION_KEYS)
    if expression_key is None:
        present = ", ".join(sorted(map(str, fit))) or "none"
        raise MotionImportError(f"{source}: no 'expression' array (keys: {present})")
    used = {expression_key: _float_array(fit[expression_key], expression_key, source)}
    if FULL_POSE_KEY in fit:
        used[FULL_POSE_KEY] = _float_array(fit[FULL_POSE_KEY], FULL_POSE_KEY, source)
        return used
    missing = []
    for part in _PARTS:
        key = _first_present(fit, part.keys)
        if key is not None:
            used[key] = _float_array(fit[key], key, source)
        elif needed.intersection(part.joints):
            joints = ", ".join(SMPLX_JOINT_NAMES[j] for j in part.joints if j in needed)
            missing.append(f"no {' or '.join(map(repr, part.keys))} array (needed for {joints})")
    if missing:
        raise MotionImportError(f"{source}: {'; '.join(missing)}")
    return used


def _full_pose(used: Mapping[str, np.ndarray], num_frames: int, hand_pca: HandPCA | None,
               flat_hand_mean: bool, source: str) -> np.ndarray:
    """The (F, 55, 3) SMPL-X axis-angle; joints of absent parts are zeros."""
    if FULL_POSE_KEY in used:
        return _joint_rotations(FULL_POSE_KEY, used[FULL_POSE_KEY], NUM_SMPLX_JOINTS, source)
    full = np.zeros((num_frames, NUM_SMPLX_JOINTS, 3))
    for part in _PARTS:
        key = _first_present(used, part.keys)
        if key is None:
            continue
        if part.hand is not None:
            rotations = _hand_rotations(key, used[key], part.hand, hand_pca, flat_hand_mean, source)
        else:
            rotations = _joint_rotations(key, used[key], part.num_joints, source)
        full[:, part.joints] = rotations
    return full


def _padded_expression(key: str, array: np.ndarray, source: str) -> np.ndarray:
    """(F, k) expression coefficients zero-padded to (F, 100)."""
    if array.ndim != 2 or array.shape[1] == 0:
        raise MotionImportError(f"{source}: {key!r} has shape {array.shape}, expected (F, k) "
                                f"with 1 <= k <= {EXPRESSION_DIM}")
    if array.shape[1] > EXPRESSION_DIM:
        raise MotionImportError(f"{source}: {key!r} has {array.shape[1]} coefficients per frame, "
                                f"more than the {EXPRESSION_DIM} SMPL-X expression coefficients")
    padded = np.zeros((len(array), EXPRESSION_DIM))
    padded[:, :array.shape[1]] = array
    return padded


def _assemble(fit: Mapping[str, Any], joints: str, hand_pca: HandPCA | str | os.PathLike | None,
              flat_hand_mean: bool, source: str) -> _Motion:
    names = _preset_joints(joints)
    indices = [_JOINT_INDEX[name] for name in names]
    used = _used_arrays(fit, set(indices), source)
    num_frames = _check_frames(used, source)
    for key, array in used.items():
        _check_finite(key, array, source)
    full = _full_pose(used, num_frames, _resolve_hand_pca(hand_pca), flat_hand_mean, source)
    expression_key = _first_present(used, EXPRESSION_KEYS)
    assert expression_key is not None  # _used_arrays guarantees it
    expression = _padded_expression(expression_key, used[expression_key], source)
    pose = full[:, indices].reshape(num_frames, 3 * len(indices))
    return _Motion(pose.astype(np.float32), expression.astype(np.float32), names,
                   int(used[expression_key].shape[1]))


def fit_to_motion(fit: Mapping[str, Any], joints: str = "upper",
                  hand_pca: HandPCA | str | os.PathLike | None = None,
                  flat_hand_mean: bool = False,
                  source: str = "<fit>") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(pose (F, 3J) float32, expression (F, 100) float32, joint names) of an SMPL-X fit dict.

    ``joints`` names a ``JOINT_PRESETS`` entry. ``hand_pca`` (a ``HandPCA`` or the path of an
    SMPL-X model) is needed only when the hands are PCA coefficients; ``flat_hand_mean=False``
    (SHOW's setting, the default) adds the model's hand mean to the expanded PCA hands.
    ``source`` names the fit in error messages.
    """
    motion = _assemble(fit, joints, hand_pca, flat_hand_mean, source)
    return motion.pose, motion.expression, motion.joint_names


# -- importing one clip ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionImport:
    """What importing one clip's fit did."""

    source: str                   # the fit file
    joints: str                   # the joint preset written
    frames_in_file: int
    frames_written: int           # the clip's video frame count
    expression_coefficients: int  # real coefficients in the file; the rest of the 100 are zeros
    trimmed_frames: int           # frames cut from the end of a fit longer than the video


def _frames_to_keep(source: str, frames_in_file: int, num_frames: int, frame_tolerance: int) -> int:
    """``num_frames`` when the fit has exactly that many, or up to ``frame_tolerance`` more."""
    if frames_in_file == num_frames:
        return num_frames
    message = f"{source}: {frames_in_file} motion frames, the clip has {num_frames} video frames"
    if frames_in_file < num_frames:
        raise MotionFrameMismatch(message)
    if frames_in_file - num_frames > frame_tolerance:
        raise MotionFrameMismatch(f"{message} ({frames_in_file - num_frames} extra, more than "
                                  f"the frame tolerance of {frame_tolerance})")
    return num_frames


def import_motion(path: str | os.PathLike, num_frames: int, out_path: str | os.PathLike,
                  joints: str = "upper", hand_pca: HandPCA | str | os.PathLike | None = None,
                  flat_hand_mean: bool = False, frame_tolerance: int = 0) -> MotionImport:
    """Convert the fit at ``path`` into the motion npz ``out_path`` (written atomically).

    ``num_frames`` is the clip video's frame count: a fit with exactly that many frames is
    written whole; one longer by at most ``frame_tolerance`` frames has its end trimmed; any
    other count raises ``MotionFrameMismatch``. See ``fit_to_motion`` for the other arguments.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if isinstance(frame_tolerance, bool) or not isinstance(frame_tolerance, (int, np.integer)) \
            or frame_tolerance < 0:
        raise ValueError(f"frame_tolerance must be an int >= 0, got {frame_tolerance!r}")
    source = str(path)
    motion = _assemble(load_fit(path), joints, hand_pca, flat_hand_mean, source)
    frames_in_file = len(motion.pose)
    keep = _frames_to_keep(source, frames_in_file, int(num_frames), int(frame_tolerance))
    save_npz_atomic(out_path, pose=motion.pose[:keep], expression=motion.expression[:keep],
                    joint_names=np.array(motion.joint_names, dtype=str))
    return MotionImport(source=source, joints=joints, frames_in_file=frames_in_file,
                        frames_written=keep, expression_coefficients=motion.expression_coefficients,
                        trimmed_frames=frames_in_file - keep)


def motion_file_candidates(motion_dir: str | os.PathLike, clip_id: str) -> tuple[Path, ...]:
    """The paths ``find_motion_file`` tries for ``clip_id``, in order (see the module doc)."""
    root = Path(motion_dir)
    return (root / f"{clip_id}.npz", root / f"{clip_id}.pkl", root / clip_id / "final_all.pkl",
            root / clip_id / "ours_exp" / "final_all.pkl")


def motion_layouts(root: str = "DIR") -> str:
    """The layouts ``find_motion_file`` tries, in order, as text for help and messages, e.g.
    ``DIR/<clip_id>.npz, DIR/<clip_id>.pkl, ... (first match wins)``."""
    return ", ".join(str(path.as_posix()) for path in motion_file_candidates(root, "<clip_id>")) \
        + " (first match wins)"


def find_motion_file(motion_dir: str | os.PathLike, clip_id: str) -> Path | None:
    """The first existing fit file of ``clip_id`` under ``motion_dir``, or None."""
    return next((path for path in motion_file_candidates(motion_dir, clip_id) if path.is_file()), None)
