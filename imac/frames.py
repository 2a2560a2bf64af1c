"""Conversions between video frames and the tensors the IMAC model works on.

Frames on disk and from the pose extractors are uint8 RGB arrays (F, H, W, 3); the model's VAE
takes float32 tensors (F, 3, size, size) in [-1, 1]. ``frames_to_tensor`` crops the centre
square of non-square frames and resizes with antialiased bilinear interpolation (so a downscale
averages rather than aliases the hue-coded markers of the toy corpus); ``tensor_to_frames`` goes
back; ``load_image`` reads a conditioning image (png/jpg) the same way.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError


def center_crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the largest centred square in a ``height`` x ``width`` image."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (frames, height, width, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if min(frames.shape[1:3]) < 1:
        raise ValueError(f"frames must have a positive height and width, got shape {frames.shape}")


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square images (N, C, S, S) resized to (N, C, size, size); unchanged when S == size."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def frames_to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) -> float32 tensor (F, 3, size, size) in [-1, 1].

    Non-square frames are cropped to their centre square first; the square is then resized with
    antialiased bilinear interpolation (skipped when it already has ``size`` pixels a side).
    """
    _check_frames(frames)
    size = _check_size(size)
    top, left, side = center_crop_box(*frames.shape[1:3])
    square = np.ascontiguousarray(frames[:, top:top + side, left:left + side])
    if not square.flags.writeable:  # torch warns on read-only memory (PIL images, mapped files)
        square = square.copy()
    x = torch.from_numpy(square).permute(0, 3, 1, 2).to(torch.float32)
    x = _resize_square(x, size)
    # Scale after resizing: the antialiasing filter may overshoot [0, 255] slightly.
    return (x / 127.5 - 1.0).clamp_(-1.0, 1.0).contiguous()


class NonFiniteError(ValueError):
    """A model's output holds NaN or infinite values: an overflow in reduced precision (fp16), a sampler
    step that took the square root of a negative rounding error, or diverged weights."""


def check_finite(values: torch.Tensor, what: str, hint: str = "") -> None:
    """Raise ``NonFiniteError`` naming ``what``, how many of ``values`` are NaN or infinite, and ``hint``
    (what to try): written as frames they would become black or arbitrary pixels without a word."""
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        raise NonFiniteError(f"{what}: {finite.numel() - int(finite.sum())} of {finite.numel()} values are NaN "
                             "or infinite" + (f"; {hint}" if hint else ""))


def tensor_to_frames(x: torch.Tensor, what: str = "frames") -> np.ndarray:
    """float tensor (F, 3, H, W) in [-1, 1] -> uint8 frames (F, H, W, 3) (clamped, rounded).
    ``NonFiniteError`` (naming ``what``) when a value is NaN or infinite."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"tensor must be (frames, 3, height, width), got shape {tuple(x.shape)}")
    check_finite(x, what)
    pixels = ((x.detach().to("cpu", torch.float32) + 1.0) * 127.5).clamp(0.0, 255.0).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


MAX_IMAGE_PIXELS = 100_000_000   # a reference image larger than this (a 10000 x 10000 photo) is refused unread
MIN_REFERENCE_FRACTION = 8       # a centre square under 1/8 of the model's side cannot show a speaker: refused


@dataclass(frozen=True)
class ReferenceImage:
    """An image file read for conditioning: ``pixels`` (H, W, 3) uint8 RGB, upright, and what was done
    to the file's pixels to get them (``notes``, in words: a rotation, a colour conversion)."""

    path: Path
    pixels: np.ndarray
    mode: str                      # the file's PIL mode (RGB, L, RGBA, I;16, ...)
    notes: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def read_image(path: str | os.PathLike) -> ReferenceImage:
    """An image file (png, jpg, ...) as upright 8-bit RGB, with what was done to it.

    Turned upright by its EXIF orientation (as viewers show it: a phone's portrait photo is stored
    sideways); grayscale, palette and CMYK converted to RGB; alpha dropped; 16-bit grayscale scaled to
    8 bits (not clipped); 32-bit grayscale kept when its values are 8-bit (``_rgb``); of an animated or
    multi-page file (GIF, APNG, WebP, TIFF), the first frame, said in ``notes``. FileNotFoundError
    for a missing file; ValueError naming the file for one that is not a readable image, one of more
    than ``MAX_IMAGE_PIXELS`` pixels (refused from its header, before decoding), one of 32-bit values
    beyond 8 bits or of float pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            # PIL warns from 89 MP (its MAX_IMAGE_PIXELS) and refuses from twice that; this bound is ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size             # from the header: nothing decoded yet
                if width * height > MAX_IMAGE_PIXELS:
                    raise _too_large(path, f"{width}x{height} pixels")
                mode, notes = image.mode, []
                frames = getattr(image, "n_frames", 1)
                if frames > 1:                          # an animation or a multi-page file: PIL reads frame 0
                    notes.append(f"the first of its {frames} frames (pages) used")
                orientation = _orientation(image)
                upright = ImageOps.exif_transpose(image)
                if orientation in range(2, 9):
                    notes.append(f"turned upright by its EXIF orientation ({width}x{height} stored)")
                pixels = _rgb(upright, path, notes, image.format)
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_large(path, f"{int(found.group(1)):,} pixels" if found else "its header's size") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if str(error).startswith(str(path)):
            raise
        if isinstance(error, UnidentifiedImageError):    # PIL's text repeats the path
            raise ValueError(f"{path}: not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, ...)") from error
        raise ValueError(f"{path}: cannot read image: {error}") from error
    return ReferenceImage(path, pixels, mode, tuple(notes))


def _too_large(path: Path, size: str) -> ValueError:
    return ValueError(f"{path}: an image of {size}, more than the {MAX_IMAGE_PIXELS:,} pixels accepted; "
                      "scale it down first")


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)          # EXIF Orientation
    except Exception:                               # (an unreadable EXIF block: no orientation)
        return None


SIXTEEN_BIT_FORMATS = ("PNG", "PPM")     # whose 16-bit grayscale PIL opens as mode "I"


def _rgb(image: Image.Image, path: Path, notes: list[str], file_format: str | None) -> np.ndarray:
    """8-bit RGB pixels of ``image`` (read from a ``file_format`` file); the conversion said in ``notes``.
    16-bit grayscale is scaled (v / 257); a 32-bit integer image of 8-bit values is kept, of wider ones
    refused (its range is not known: scaled it could come out black), as is a floating-point image."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        sixteen = mode.startswith("I;16") or file_format in SIXTEEN_BIT_FORMATS
        if low < 0 or high > (65535 if sixteen else 255):
            raise ValueError(f"{path}: a {'16' if sixteen else '32'}-bit integer image of values {low} .. {high}: "
                             "its range is not known; save it as 8-bit RGB")
        if sixteen:
            notes.append("16-bit grayscale scaled to 8 bits")
            gray = np.round(values / 257.0).astype(np.uint8)
        else:                                   # 32-bit storage of 8-bit values: kept as they are
            notes.append("32-bit grayscale of 8-bit values converted to RGB")
            gray = values.astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "F":
        raise ValueError(f"{path}: a floating-point image; save it as 8-bit RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        notes.append(f"its {mode} transparency dropped (RGB only)")
    elif mode not in ("RGB",):
        names = {"L": "grayscale", "1": "black-and-white", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr",
                 "LAB": "Lab", "HSV": "HSV"}
        notes.append(f"{names.get(mode, mode)} ({mode}) converted to RGB")
    return np.array(image.convert("RGB"), dtype=np.uint8)


def reference_tensor(image: ReferenceImage, size: int) -> torch.Tensor:
    """``image`` as the model's (3, size, size) float32 tensor in [-1, 1] (``frames_to_tensor``).
    ValueError naming the file when its centre square is under 1/``MIN_REFERENCE_FRACTION`` of ``size``
    (a strip of a few pixels: nothing of a speaker survives)."""
    size = _check_size(size)
    side = min(image.width, image.height)
    if side * MIN_REFERENCE_FRACTION < size:
        least = -(-size // MIN_REFERENCE_FRACTION)
        raise ValueError(f"{image.path}: {image.width}x{image.height} pixels: its centre square of {side} px is too "
                         f"small to show a speaker at the model's {size} px (at least {least} px a side)")
    return frames_to_tensor(image.pixels[None], size)[0]


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file (png, jpg, ...) as a float32 tensor (3, size, size) in [-1, 1]: ``read_image``
    (upright 8-bit RGB), then its centre square resized (``reference_tensor``). FileNotFoundError for
    a missing file, ValueError naming the file for one that is not a readable image or too small."""
    return reference_tensor(read_image(path), size)


def describe_preparation(width: int, height: int, size: int) -> str:
    """What ``frames_to_tensor`` does to a ``width`` x ``height`` image, in words (for the user)."""
    side = min(width, height)
    steps = [f"{width}x{height}"]
    if width != height:
        steps.append(f"centre square {side}x{side} (crop {width - side} px of width, {height - side} px of height)")
    if side != size:
        steps.append(f"{'shrunk' if side > size else 'enlarged'} to {size}x{size}")
    return " -> ".join(steps) if len(steps) > 1 else f"{width}x{height}, used as is"
