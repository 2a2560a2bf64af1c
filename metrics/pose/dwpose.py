"""DWPose whole-body pose extractor: the published two-model ONNX pipeline on onnxruntime.

DWPose (Yang et al., ICCV 2023 workshops) is a top-down pipeline: a YOLOX-L person detector
(``yolox_l.onnx``) finds a box, and an RTMPose-style model distilled on COCO-WholeBody + UBody
(``dw-ll_ucoco_384.onnx``) reads 133 keypoints from the crop as SimCC coordinate
classifications. This module runs the two ONNX files a user gives as local paths (nothing is
downloaded) and reproduces the pre- and post-processing of DWPose's own ``onnxdet.py`` /
``onnxpose.py`` (ControlNet-v1-1-nightly/annotator/dwpose), with these deliberate differences:

- **Keypoint layout**: the 133 COCO-WholeBody points in the model's own order (the layout of
  ``metrics.pose.wholebody``), x, y in pixels with integer = pixel centre, score in [0, 1] and 0 for
  absent points. DWPose's wrapper adds a neck point and reorders the body to OpenPose order for
  drawing; that is not done here.
- **One person per frame**: the detector may find several people; the pose of the one with the
  **largest box** is returned (``person="largest"``), because the videos measured here show one
  speaker, and the speaker is the largest person in frame, while a small background figure can
  out-score them. ``person="highest_score"`` picks the most confident detection instead. With no
  detection the whole frame is the box, as in DWPose.
- **Channel order**: frames come in RGB. The detector is fed **BGR** and the pose model **RGB**,
  each what it was trained on: YOLOX (Megvii's export, the 85-column output decoded here) is
  trained on BGR images read by cv2, and the pose model's config (``dwpose-l_384x288.py``) has
  ``bgr_to_rgb=True`` with the RGB mean/std below. DWPose's own code passes one array to both
  models, so it is wrong for one of them whatever it is given (its example script reads BGR with
  cv2, its gradio demo passes RGB). ``detector_channel_order="rgb"`` reproduces the RGB-to-both
  variant that most code built on the ControlNet annotator runs.
- **Resampling without cv2**: resize (letterbox) and affine warp are bilinear in numpy with
  cv2's conventions (``cv2.resize`` INTER_LINEAR: half-pixel centres, edge pixels repeated;
  ``cv2.warpAffine`` INTER_LINEAR: integer = pixel centre, zeros outside the image), computed in
  float and rounded to uint8 as cv2's uint8 output is. cv2 uses fixed-point weights and snaps
  warp positions to 1/32 pixel, so a pixel can differ from cv2's by one grey level (measured
  against opencv 5.0: letterboxes of 1280 x 720 and 1920 x 1080 frames identical, other sizes
  within 1 on ~10% of pixels; crops within 1 on < 5% of pixels). Results do not depend on
  whether cv2 is installed.
- **Scores** are the SimCC maxima as DWPose computes them (minimum of the x and y maxima), clipped
  to [0, 1]: below 0 means not found (DWPose marks such points with location -1), and the raw
  maxima can slightly exceed 1. Points with score 0 get x = y = 0.

Detection follows ``onnxdet.py``: letterbox to 640 x 640 (ratio ``min(640/h, 640/w)``, pad 114,
top-left), float32 CHW 0..255 with no normalisation, YOLOX decoding on strides 8/16/32, score =
objectness x class score, boxes divided by the ratio, greedy NMS (IoU 0.45, the "+1" pixel
convention of the YOLOX demo), person class with score > 0.3. DWPose runs NMS on scores > 0.1 and
then keeps > 0.3; NMS on > 0.3 directly gives the same boxes, since a box is only suppressed by
higher-scoring ones.

Pose follows ``onnxpose.py``: box -> centre and scale x 1.25, scale enlarged to w/h = 288/384,
affine warp of that region to 288 x 384, (pixel - mean) / std, SimCC argmax / 2.0, mapped back by
``kp / input_size * scale + centre - scale / 2``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from metrics.io.files import update_digest_from_file
from metrics.pose import wholebody as wb

EXTRACTOR_VERSION = "dwpose-onnx-v1"

DETECTOR_INPUT_SIZE = (640, 640)        # (height, width)
DETECTOR_STRIDES = (8, 16, 32)
LETTERBOX_PAD_VALUE = 114
PERSON_CLASS = 0

POSE_INPUT_SIZE = (288, 384)            # (width, height), as DWPose writes it
BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0
POSE_MEAN = np.array([123.675, 116.28, 103.53])  # RGB
POSE_STD = np.array([58.395, 57.12, 57.375])

PERSON_RULES = ("largest", "highest_score")
CHANNEL_ORDERS = ("bgr", "rgb")
_DEFAULT_SETTINGS = {"detection_threshold": 0.3, "nms_iou": 0.45, "person": "largest",
                     "detector_channel_order": "bgr"}


# --------------------------------------------------------------------------- resampling

def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of ``cv2.resize`` INTER_LINEAR along one axis."""
    position = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    position = np.clip(position, 0.0, in_size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (position - low).astype(np.float32)


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of (H, W, C) to (height, width, C), float32, with cv2 INTER_LINEAR conventions.

    An output pixel's centre maps to ``(i + 0.5) * in / out - 0.5`` in the input; positions beyond
    the first or last pixel centre take the edge pixel. No anti-aliasing when shrinking (cv2 has
    none either; PIL's bilinear has, and would change the detector's input).
    """
    image = np.asarray(image, dtype=np.float32)
    low, high, frac = _linear_taps(image.shape[0], height)
    frac = frac[:, None, None]
    rows = image[low] * (1.0 - frac) + image[high] * frac
    low, high, frac = _linear_taps(image.shape[1], width)
    frac = frac[None, :, None]
    return rows[:, low] * (1.0 - frac) + rows[:, high] * frac


def _to_uint8(values: np.ndarray) -> np.ndarray:
    # Halves round up, as cv2's fixed-point uint8 output does (np.rint would round them to even).
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def letterbox(image: np.ndarray, input_size: tuple[int, int] = DETECTOR_INPUT_SIZE,
              pad_value: int = LETTERBOX_PAD_VALUE) -> tuple[np.ndarray, float]:
    """YOLOX letterbox: ``(padded uint8 (input_h, input_w, C), ratio)``.

    The image is scaled by ``ratio = min(input_h / h, input_w / w)`` to ``(int(w * ratio),
    int(h * ratio))``, placed at the top-left corner, and the rest is ``pad_value``. A point of
    the padded image maps back to the original by dividing by ``ratio``.
    """
    height, width = image.shape[:2]
    ratio = min(input_size[0] / height, input_size[1] / width)
    new_height, new_width = int(height * ratio), int(width * ratio)
    padded = np.full((input_size[0], input_size[1]) + image.shape[2:], pad_value, dtype=np.uint8)
    padded[:new_height, :new_width] = _to_uint8(resize_bilinear(image, new_width, new_height))
    return padded, ratio


def warp_affine(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine(image, matrix, output_size, INTER_LINEAR)`` in float32: (out_h, out_w, C).

    ``matrix`` (2, 3) maps input pixel coordinates to output ones (integer = pixel centre); each
    output pixel samples the input bilinearly at the inverse-mapped position, and pixels outside
    the input count as 0 (cv2's default constant border).
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    out_width, out_height = output_size
    inverse = np.linalg.inv(np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]]))[:2]
    xs, ys = np.meshgrid(np.arange(out_width, dtype=np.float64), np.arange(out_height, dtype=np.float64))
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    x0 = np.floor(src_x).astype(np.int64)
    y0 = np.floor(src_y).astype(np.int64)
    fx = (src_x - x0).astype(np.float32)[..., None]
    fy = (src_y - y0).astype(np.float32)[..., None]

    def tap(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
        values = image[np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
        return values * inside[..., None]

    top = tap(y0, x0) * (1.0 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1.0 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1.0 - fy) + bottom * fy


# --------------------------------------------------------------------------- detection

def decode_yolox(prediction: np.ndarray, input_size: tuple[int, int] = DETECTOR_INPUT_SIZE,
                 strides: Sequence[int] = DETECTOR_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Raw YOLOX output (..., A, 5 + C) -> boxes (..., A, 4) x1, y1, x2, y2 in input pixels, scores (..., A, C).

    Anchors are the cells of the stride-8, 16 and 32 grids, each grid row by row (8400 for 640 x
    640). Columns: x, y offsets in cells, log width, log height in cells, objectness, class scores.
    ``xy = (pred_xy + cell) * stride``, ``wh = exp(pred_wh) * stride``, score = objectness x class.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    cells, cell_strides = [], []
    for stride in strides:
        rows, cols = input_size[0] // stride, input_size[1] // stride
        xv, yv = np.meshgrid(np.arange(cols), np.arange(rows))
        cells.append(np.stack((xv, yv), -1).reshape(-1, 2))
        cell_strides.append(np.full((rows * cols, 1), stride))
    cell = np.concatenate(cells)
    stride = np.concatenate(cell_strides)
    if prediction.shape[-2] != len(cell) or prediction.shape[-1] < 6:
        raise ValueError(f"YOLOX output must be (..., {len(cell)}, 5 + classes) for input {input_size}, "
                         f"got {prediction.shape}")
    centre = (prediction[..., :2] + cell) * stride
    with np.errstate(over="ignore"):
        size = np.exp(prediction[..., 2:4]) * stride
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=-1)
    scores = prediction[..., 4:5] * prediction[..., 5:]
    return boxes, scores


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, pixel_offset: float = 1.0) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold``.
    ``pixel_offset=1`` counts a box's width as ``x2 - x1 + 1``, the convention of the YOLOX demo
    code DWPose uses (boxes in image pixels); 0 gives the continuous IoU.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + pixel_offset) * (y2 - y1 + pixel_offset)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + pixel_offset)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + pixel_offset)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def detect_persons(prediction: np.ndarray, ratio: float, score_threshold: float = 0.3,
                   nms_iou: float = 0.45, input_size: tuple[int, int] = DETECTOR_INPUT_SIZE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw YOLOX output (A, 5 + C) -> person boxes (n, 4) in image pixels and scores (n,), best first."""
    boxes, scores = decode_yolox(prediction, input_size)
    boxes = boxes / ratio
    person = scores[:, PERSON_CLASS]
    candidates = np.flatnonzero(person > score_threshold)
    keep = candidates[nms(boxes[candidates], person[candidates], nms_iou)]
    return boxes[keep], person[keep]


def whole_image_box(height: int, width: int) -> np.ndarray:
    """The box DWPose uses when no person is detected: the whole image, ``(0, 0, width, height)``."""
    return np.array([0.0, 0.0, float(width), float(height)])


def select_person(boxes: np.ndarray, scores: np.ndarray, image_size: tuple[int, int],
                  rule: str = "largest") -> np.ndarray:
    """The box (4,) whose pose is returned: the largest (``"largest"``) or most confident
    (``"highest_score"``) detection; the whole image (``image_size`` = (height, width)) if none."""
    if rule not in PERSON_RULES:
        raise ValueError(f"person rule must be one of {PERSON_RULES}, got {rule!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return whole_image_box(*image_size)
    if rule == "largest":
        key = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    else:
        key = np.asarray(scores, dtype=np.float64)
    return boxes[int(np.argmax(key))]


# --------------------------------------------------------------------------- pose

def box_to_centre_scale(box: np.ndarray, padding: float = BOX_PADDING,
                        aspect_ratio: float | None = POSE_INPUT_SIZE[0] / POSE_INPUT_SIZE[1]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Box x1, y1, x2, y2 -> centre (2,) and scale (2,) = the (width, height) of the region to crop.

    The box is enlarged by ``padding``, then its short side (relative to ``aspect_ratio`` = w / h)
    is lengthened so that the region has the model input's aspect ratio (mmpose's
    ``bbox_xyxy2cs`` then ``_fix_aspect_ratio``). ``aspect_ratio=None`` skips the second step.
    """
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    centre = np.array([x1 + x2, y1 + y2]) * 0.5
    scale = np.array([x2 - x1, y2 - y1]) * padding
    if aspect_ratio is not None:
        w, h = scale
        scale = np.array([w, w / aspect_ratio]) if w > h * aspect_ratio else np.array([h * aspect_ratio, h])
    return centre, scale


def affine_matrix(centre: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """The (2, 3) matrix taking the region ``centre`` +- ``scale / 2`` to an ``output_size`` (w, h) image.

    mmpose's ``get_warp_matrix`` with no rotation or shift: a uniform zoom of
    ``output_w / scale_w`` that puts ``centre`` at the output's centre ``(w / 2, h / 2)``. Like
    mmpose it uses only the width of ``scale``; the region's corners land on the output's corners
    when ``scale`` has the output's aspect ratio (``box_to_centre_scale`` ensures it).
    """
    centre = np.asarray(centre, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if not scale[0] > 0:
        raise ValueError(f"crop scale must be positive, got {scale}")
    out_width, out_height = output_size
    zoom = out_width / scale[0]
    return np.array([[zoom, 0.0, out_width / 2 - zoom * centre[0]],
                     [0.0, zoom, out_height / 2 - zoom * centre[1]]])


def crop_for_pose(image_rgb: np.ndarray, box: np.ndarray, input_size: tuple[int, int] = POSE_INPUT_SIZE
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pose model's input for one box: (normalised CHW float32 (3, h, w), centre, scale)."""
    centre, scale = box_to_centre_scale(box, BOX_PADDING, input_size[0] / input_size[1])
    crop = _to_uint8(warp_affine(image_rgb, affine_matrix(centre, scale, input_size), input_size))
    normalised = (crop - POSE_MEAN) / POSE_STD
    return normalised.transpose(2, 0, 1).astype(np.float32), centre, scale


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = SIMCC_SPLIT_RATIO
                 ) -> tuple[np.ndarray, np.ndarray]:
    """SimCC outputs (N, K, Wx), (N, K, Wy) -> keypoints (N, K, 2) in model-input pixels, scores (N, K).

    A point's bin on each axis is the argmax; its score is the smaller of the two maxima
    (``get_simcc_maximum``); bins are divided by ``split_ratio`` (SimCC's sub-pixel bins). As in
    DWPose, a point whose score is <= 0 gets bin -1 on both axes.
    """
    simcc_x = np.asarray(simcc_x)
    simcc_y = np.asarray(simcc_y)
    locations = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    locations[scores <= 0] = -1
    return locations / split_ratio, scores


def keypoints_to_image(keypoints: np.ndarray, centre: np.ndarray, scale: np.ndarray,
                       input_size: tuple[int, int] = POSE_INPUT_SIZE) -> np.ndarray:
    """Model-input pixels (..., K, 2) -> image pixels: ``kp / input_size * scale + centre - scale / 2``.

    ``centre`` and ``scale`` are (2,) or (N, 2) for keypoints (N, K, 2); the inverse of
    ``affine_matrix``.
    """
    centre = np.asarray(centre, dtype=np.float64)[..., None, :]
    scale = np.asarray(scale, dtype=np.float64)[..., None, :]
    return np.asarray(keypoints, dtype=np.float64) / np.asarray(input_size, dtype=np.float64) * scale + centre - scale / 2


# --------------------------------------------------------------------------- the extractor

def _static(dim) -> int | None:
    """A declared ONNX dimension as an int, or None when it is symbolic or unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


def _fits(dim, expected: int) -> bool:
    return _static(dim) is None or dim == expected


class DWPoseModelError(ValueError):
    """A DWPose ONNX file that does not load, is not the expected network, or fails (or answers in
    the wrong shape) while running; the message names the file.

    The model is to blame, not the clip it ran on, so ``metrics.evaluate`` stops the run with it
    even when skipping bad clips (``--skip-bad``).
    """


def _open_session(path: Path, providers: list[str], what: str) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime raises its own types; name the file in the message
        raise DWPoseModelError(f"cannot load the DWPose {what} model {path}: {error}") from error


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime has it, then CPU."""
    available = ort.get_available_providers()
    return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]


def models_digest(detector_onnx: str | os.PathLike, pose_onnx: str | os.PathLike) -> str:
    """sha256 hex digest over the detector's bytes then the pose model's bytes."""
    digest = hashlib.sha256()
    for path in (detector_onnx, pose_onnx):
        update_digest_from_file(digest, path)
    return digest.hexdigest()


class DWPose:
    """``DWPose(detector_onnx, pose_onnx)(frames)`` -> keypoints (F, 133, 3) for uint8 RGB frames (F, H, W, 3).

    The interface of ``metrics.pose.toy.ToyMarkerPose``: ``extractor_id`` names the weights (and any
    non-default setting) so that cached keypoints are recomputed when they change. See the module
    docstring for the pipeline and its choices.

    Args:
        detector_onnx: path of DWPose's ``yolox_l.onnx`` (input (1, 3, 640, 640)).
        pose_onnx: path of ``dw-ll_ucoco_384.onnx`` (input (1, 3, 384, 288), outputs simcc_x, simcc_y).
        providers: onnxruntime execution providers; default CUDA if available, then CPU.
        detection_threshold: person score (objectness x class) a detection must exceed.
        nms_iou: IoU above which the lower-scoring of two person boxes is dropped.
        person: ``"largest"`` box or ``"highest_score"`` when several people are detected.
        detector_channel_order: ``"bgr"`` (what YOLOX was trained on) or ``"rgb"``.
        batch_size: frames per model call for models with a dynamic batch dimension, and frames
            processed at once (the published exports have batch 1 and are called once per frame).
    """

    def __init__(self, detector_onnx: str | os.PathLike, pose_onnx: str | os.PathLike,
                 providers: Sequence[str] | None = None, detection_threshold: float = 0.3,
                 nms_iou: float = 0.45, person: str = "largest", detector_channel_order: str = "bgr",
                 batch_size: int = 8) -> None:
        if person not in PERSON_RULES:
            raise ValueError(f"person must be one of {PERSON_RULES}, got {person!r}")
        if detector_channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"detector_channel_order must be one of {CHANNEL_ORDERS}, got {detector_channel_order!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.detector_path = Path(detector_onnx)
        self.pose_path = Path(pose_onnx)
        for path, what in ((self.detector_path, "detector"), (self.pose_path, "pose")):
            if not path.is_file():
                raise FileNotFoundError(f"DWPose {what} model not found: {path}")
        self.providers = list(providers) if providers is not None else default_providers()
        self.detection_threshold = float(detection_threshold)
        self.nms_iou = float(nms_iou)
        self.person = person
        self.detector_channel_order = detector_channel_order
        self.batch_size = int(batch_size)

        self._detector = _open_session(self.detector_path, self.providers, "detector")
        self._pose = _open_session(self.pose_path, self.providers, "pose")
        self._detector_batch = self._check_detector()
        self._pose_batch, self.pose_input_size, self._simcc_names = self._check_pose()
        self.extractor_id = self._make_id()

    def __reduce__(self):
        """Pickled as its arguments: the copy (in a worker process) opens its ONNX sessions again."""
        return (type(self), (self.detector_path, self.pose_path, self.providers, self.detection_threshold,
                             self.nms_iou, self.person, self.detector_channel_order, self.batch_size))

    # ---- model checks

    def _check_detector(self) -> int | None:
        inputs, outputs = self._detector.get_inputs(), self._detector.get_outputs()
        where = f"DWPose detector {self.detector_path}"
        expected = (1, 3) + DETECTOR_INPUT_SIZE
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or not all(
                _fits(d, e) for d, e in zip(inputs[0].shape[1:], expected[1:])):
            raise DWPoseModelError(f"{where}: expected one input of shape {expected} (the batch may be dynamic), "
                             f"got {[tuple(i.shape) for i in inputs]}")
        anchors = sum((DETECTOR_INPUT_SIZE[0] // s) * (DETECTOR_INPUT_SIZE[1] // s) for s in DETECTOR_STRIDES)
        shape = outputs[0].shape if outputs else []
        if len(shape) != 3 or not _fits(shape[1], anchors) or (_static(shape[2]) is not None and shape[2] < 6):
            raise DWPoseModelError(f"{where}: expected a first output of shape (1, {anchors}, 5 + classes) "
                             f"(YOLOX raw predictions), got {[tuple(o.shape) for o in outputs]}")
        return _static(inputs[0].shape[0])

    def _check_pose(self) -> tuple[int | None, tuple[int, int], tuple[str, str]]:
        inputs, outputs = self._pose.get_inputs(), self._pose.get_outputs()
        where = f"DWPose pose model {self.pose_path}"
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or not _fits(inputs[0].shape[1], 3):
            raise DWPoseModelError(f"{where}: expected one input of shape (1, 3, height, width), "
                             f"got {[tuple(i.shape) for i in inputs]}")
        height, width = (_static(d) for d in inputs[0].shape[2:])
        # As in DWPose, the crop size is the model's declared input size (384 x 288 for dw-ll_ucoco_384).
        input_size = (width or POSE_INPUT_SIZE[0], height or POSE_INPUT_SIZE[1])
        names = [o.name for o in outputs]
        if len(outputs) != 2 or any(len(o.shape) != 3 for o in outputs):
            raise DWPoseModelError(f"{where}: expected two SimCC outputs simcc_x (1, {wb.NUM_KEYPOINTS}, "
                             f"{int(input_size[0] * SIMCC_SPLIT_RATIO)}) and simcc_y (1, {wb.NUM_KEYPOINTS}, "
                             f"{int(input_size[1] * SIMCC_SPLIT_RATIO)}), got "
                             f"{[(o.name, tuple(o.shape)) for o in outputs]}")
        if set(names) == {"simcc_x", "simcc_y"}:
            ordered = (outputs[names.index("simcc_x")], outputs[names.index("simcc_y")])
        else:  # DWPose takes them in order: x, then y
            ordered = tuple(outputs)
        for output, axis, size in zip(ordered, "xy", input_size):
            bins = int(round(size * SIMCC_SPLIT_RATIO))
            if not (_fits(output.shape[1], wb.NUM_KEYPOINTS) and _fits(output.shape[2], bins)):
                raise DWPoseModelError(f"{where}: SimCC output '{output.name}' for {axis} must be (1, "
                                 f"{wb.NUM_KEYPOINTS}, {bins}) for input width x height {input_size}, "
                                 f"got {tuple(output.shape)}")
        return _static(inputs[0].shape[0]), input_size, (ordered[0].name, ordered[1].name)

    def _make_id(self) -> str:
        digest = models_digest(self.detector_path, self.pose_path)[:12]
        settings = {"detection_threshold": self.detection_threshold, "nms_iou": self.nms_iou,
                    "person": self.person, "detector_channel_order": self.detector_channel_order}
        changed = [f"{k}={v}" for k, v in settings.items() if v != _DEFAULT_SETTINGS[k]]
        return f"{EXTRACTOR_VERSION}:{digest}" + ("+" + ",".join(changed) if changed else "")

    # ---- running

    @staticmethod
    def _run(session: ort.InferenceSession, batch: np.ndarray, fixed_batch: int | None, max_batch: int,
             output_names: list[str] | None = None, path: Path | None = None) -> list[np.ndarray]:
        """Run ``session`` on ``batch`` in chunks of the model's fixed batch size (padded) or ``max_batch``.

        A model that fails on a chunk (onnxruntime raises its own exception types) raises
        ``DWPoseModelError`` naming its file ``path``.
        """
        name = session.get_inputs()[0].name
        step = fixed_batch or max_batch
        parts = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            count = len(chunk)
            if fixed_batch is not None and count < fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((fixed_batch - count,) + chunk.shape[1:], chunk.dtype)])
            try:
                outputs = session.run(output_names, {name: chunk})
            except Exception as error:
                message = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
                raise DWPoseModelError(f"{path}: the DWPose model failed on an input of shape {chunk.shape}: "
                                 f"{message}") from error
            parts.append([np.asarray(out)[:count] for out in outputs])
        return [np.concatenate(outs) for outs in zip(*parts)]

    def person_boxes(self, frames: np.ndarray) -> np.ndarray:
        """The box (x1, y1, x2, y2) in pixels of the person whose pose is read, per frame: (F, 4)."""
        frames = _check_frames(frames)
        if len(frames) == 0:
            return np.zeros((0, 4))
        detector_frames = frames[..., ::-1] if self.detector_channel_order == "bgr" else frames
        inputs, ratios = [], []
        for frame in detector_frames:
            padded, ratio = letterbox(frame)
            inputs.append(padded.transpose(2, 0, 1))
            ratios.append(ratio)
        predictions = self._run(self._detector, np.stack(inputs).astype(np.float32),
                                self._detector_batch, self.batch_size, path=self.detector_path)[0]
        boxes = []
        for prediction, ratio in zip(predictions, ratios):
            try:
                found, scores = detect_persons(prediction, ratio, self.detection_threshold, self.nms_iou)
            except ValueError as error:   # an output of the wrong shape: the model file is to blame
                raise DWPoseModelError(f"DWPose detector model {self.detector_path}: {error}") from error
            boxes.append(select_person(found, scores, frames.shape[1:3], self.person))
        return np.stack(boxes)

    def keypoints_in_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Keypoints (F, 133, 3) of the person in each frame's box (F, 4)."""
        frames = _check_frames(frames)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != len(frames):
            raise ValueError(f"need one box per frame, got {len(boxes)} boxes for {len(frames)} frames")
        out = np.zeros((len(frames), wb.NUM_KEYPOINTS, 3), dtype=np.float32)
        if len(frames) == 0:
            return out
        crops, centres, scales = zip(*(crop_for_pose(f, b, self.pose_input_size) for f, b in zip(frames, boxes)))
        simcc_x, simcc_y = self._run(self._pose, np.stack(crops), self._pose_batch, self.batch_size,
                                     list(self._simcc_names), path=self.pose_path)
        width, height = self.pose_input_size
        expected_x = (len(frames), wb.NUM_KEYPOINTS, int(round(width * SIMCC_SPLIT_RATIO)))
        expected_y = (len(frames), wb.NUM_KEYPOINTS, int(round(height * SIMCC_SPLIT_RATIO)))
        if simcc_x.shape != expected_x or simcc_y.shape != expected_y:
            raise DWPoseModelError(f"DWPose pose model {self.pose_path} returned SimCC shapes {simcc_x.shape}, "
                             f"{simcc_y.shape}; expected {expected_x}, {expected_y}")
        points, scores = decode_simcc(simcc_x, simcc_y)
        points = keypoints_to_image(points, np.stack(centres), np.stack(scales), self.pose_input_size)
        scores = np.clip(scores, 0.0, 1.0)
        points[scores <= 0] = 0.0
        out[..., :2] = points
        out[..., 2] = scores
        return out

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames)
        out = np.zeros((len(frames), wb.NUM_KEYPOINTS, 3), dtype=np.float32)
        # Chunks bound the memory of the 640 x 640 detector inputs on long videos.
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            out[start:start + len(chunk)] = self.keypoints_in_boxes(chunk, self.person_boxes(chunk))
        return out

    def __repr__(self) -> str:
        return (f"DWPose({str(self.detector_path)!r}, {str(self.pose_path)!r}, providers={self.providers}, "
                f"person={self.person!r}, detector_channel_order={self.detector_channel_order!r})")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 (F, H, W, 3); one (H, W, 3) frame is taken as F = 1, as ``ToyMarkerPose`` does."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape[1:3]:
        raise ValueError(f"frames must be uint8 RGB (frames, height, width, 3), got {frames.dtype} {frames.shape}")
    return frames
