"""What `imac sample` does to a real-world reference image and speech file, and how it refuses bad ones:
imac.frames.read_image (EXIF orientation, 16-bit grayscale, size bounds), metrics.io.audio's messages,
metrics.io.bounded.check_safetensors (a weights file cut short)."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from imac.frames import MAX_IMAGE_PIXELS, read_image, reference_tensor
from metrics.io.audio import audio_info, load_audio
from metrics.io.bounded import BoundedReadError, check_safetensors


def test_a_photo_stored_sideways_is_turned_upright_by_its_exif_orientation(tmp_path):
    stored = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6            # EXIF Orientation 6: shown rotated 90 degrees clockwise (a phone held upright)
    Image.fromarray(stored).save(tmp_path / "portrait.png", exif=exif)
    image = read_image(tmp_path / "portrait.png")
    np.testing.assert_array_equal(image.pixels, np.rot90(stored, k=-1))     # clockwise: numpy's k = -1
    assert (image.width, image.height) == (24, 40)
    assert image.notes == ("turned upright by its EXIF orientation (40x24 stored)",)
    Image.fromarray(stored).save(tmp_path / "plain.png")
    assert read_image(tmp_path / "plain.png").notes == ()


def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.array([[0, 257, 25700, 32896], [50000, 65278, 65535, 128]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    image = read_image(tmp_path / "deep.png")
    expected = np.array([[0, 1, 100, 128], [195, 254, 255, 0]], np.uint8)   # round(v / 257), by hand
    for channel in range(3):
        np.testing.assert_array_equal(image.pixels[..., channel], expected)
    assert image.notes == ("16-bit grayscale scaled to 8 bits",)


def test_colour_conversions_are_said(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    assert read_image(tmp_path / "print.jpg").notes == ("CMYK (CMYK) converted to RGB",)
    Image.new("L", (16, 16), 90).save(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png").notes == ("grayscale (L) converted to RGB",)
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(tmp_path / "alpha.png")
    assert read_image(tmp_path / "alpha.png").notes == ("its RGBA transparency dropped (RGB only)",)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit RGB) and holds one empty data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height, said", [(12_000, 10_000, "12000x10000 pixels"),
                                                 (100_000, 100_000, "10,000,000,000 pixels")])
def test_an_image_too_large_is_refused_from_its_header_in_one_line(tmp_path, width, height, said):
    # 120 MP: over this project's bound, between PIL's warning (89 MP) and its refusal (179 MP); 10 GP: over
    # PIL's refusal (its DecompressionBombError)
    (tmp_path / "huge.png").write_bytes(png_header(width, height))
    assert width * height > MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no DecompressionBombWarning printed either
        with pytest.raises(ValueError, match=rf"huge.png: an image of {said}, more than the 100,000,000 pixels "
                                             "accepted; scale it down first"):
            read_image(tmp_path / "huge.png")


def test_an_image_under_the_bound_but_over_pils_warning_is_not_refused_as_too_large(tmp_path):
    (tmp_path / "big.png").write_bytes(png_header(9_500, 9_500))          # 90 MP: PIL warns from 89 MP
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as refused:        # its pixels are missing: refused when decoded
            read_image(tmp_path / "big.png")
    assert "more than the" not in str(refused.value) and "big.png" in str(refused.value)


def test_a_strip_of_a_few_pixels_is_refused_as_a_reference(tmp_path):
    Image.new("RGB", (2000, 3), (200, 100, 50)).save(tmp_path / "strip.png")
    image = read_image(tmp_path / "strip.png")
    with pytest.raises(ValueError, match=r"strip.png: 2000x3 pixels: its centre square of 3 px is too small .* "
                                         r"\(at least 8 px a side\)"):
        reference_tensor(image, 64)
    Image.new("RGB", (20, 8), (200, 100, 50)).save(tmp_path / "small.png")
    assert reference_tensor(read_image(tmp_path / "small.png"), 64).shape == (3, 64, 64)   # 8 px: enlarged


def test_unreadable_audio_says_why_and_what_is_read(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.wav: cannot read audio header: an empty file \(0 bytes\)"):
        audio_info(tmp_path / "empty.wav")
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 10)
    for read in (audio_info, load_audio):
        with pytest.raises(ValueError, match=r"notes.wav: cannot read audio.*\(a damaged file, or not the .wav its "
                                             r"name says; audio is read as WAV, FLAC, OGG \(Vorbis, Opus\) or MP3\)"):
            read(tmp_path / "notes.wav")
    (tmp_path / "talk.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(64))
    with pytest.raises(ValueError, match=r"talk.m4a: .*extract other audio first, e.g. `ffmpeg -i talk.m4a -ac 1 "
                                         r"talk.wav`"):
        audio_info(tmp_path / "talk.m4a")


def test_a_safetensors_file_cut_short_is_named_with_its_sizes(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.zeros(100), "b": torch.ones(3, 5)}, str(path))
    whole = path.read_bytes()
    assert check_safetensors(path) == len(whole)
    path.write_bytes(whole[: len(whole) - 60])
    with pytest.raises(BoundedReadError, match=rf"weights.safetensors: truncated: its header describes {len(whole):,} "
                                                rf"bytes, the file has {len(whole) - 60:,}"):
        check_safetensors(path)
    path.write_bytes(whole[:5])
    with pytest.raises(BoundedReadError, match="shorter than its 8-byte header length"):
        check_safetensors(path)
    path.write_bytes((10 ** 9).to_bytes(8, "little") + b"{}")
    with pytest.raises(BoundedReadError, match="not a safetensors file, or truncated"):
        check_safetensors(path)


def test_a_model_folder_with_truncated_weights_is_refused_before_loading(tmp_path):
    from diffusers import AutoencoderKL

    from imac.models.loading import load_pretrained
    from tests.imac_fixtures import make_vae

    folder = make_vae(tmp_path / "vae")
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(BoundedReadError, match=rf"{weights.name}: truncated"):
        load_pretrained(AutoencoderKL, folder)


def test_32_bit_grayscale_of_8_bit_values_is_kept_and_of_wider_values_refused(tmp_path):
    small = np.array([[0, 17, 255]], np.int32)
    Image.fromarray(small, mode="I").save(tmp_path / "eight.tif")
    assert Image.open(tmp_path / "eight.tif").mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "eight.tif").pixels[..., 1], [[0, 17, 255]])
    for values in ([[0, 1000]], [[0, 70000]]):      # a range that is not known: scaled, 1000 would come out dark
        Image.fromarray(np.array(values, np.int32), mode="I").save(tmp_path / "wide.tif")
        with pytest.raises(ValueError, match=rf"wide.tif: a 32-bit integer image of values 0 .. {values[0][1]}: its "
                                             "range is not known"):
            read_image(tmp_path / "wide.tif")


def test_a_16_bit_pgm_opened_as_32_bit_is_scaled_as_16_bit(tmp_path):
    values = np.array([[0, 200], [257, 65535]], np.uint16)       # a dark 16-bit image stays dark
    (tmp_path / "dark.pgm").write_bytes(b"P5\n2 2\n65535\n" + values.astype(">u2").tobytes())
    image = read_image(tmp_path / "dark.pgm")
    np.testing.assert_array_equal(image.pixels[..., 0], [[0, 1], [1, 255]])       # round(v / 257)
    assert image.notes == ("16-bit grayscale scaled to 8 bits",)


def test_a_file_that_is_no_image_is_said_once_with_its_path_first(tmp_path):
    """Was: "cannot read image P: cannot identify image file 'P'" (the path twice, not first)."""
    (tmp_path / "notes.png").write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ValueError) as refused:
        read_image(tmp_path / "notes.png")
    assert str(refused.value) == f"{tmp_path / 'notes.png'}: not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, ...)"


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".png", ".webp"])
def test_an_animated_or_multi_page_image_gives_its_first_frame_and_says_so(tmp_path, suffix):
    """Three solid frames (red, green, blue) saved as one animated / multi-page file: the reference
    is the red first frame, and the notes say that one of three was used (it was silent)."""
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    frames = [Image.new("RGB", (32, 24), colour) for colour in colours]
    path = tmp_path / f"three{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], **({"lossless": True} if suffix == ".webp" else {}))
    image = read_image(path)
    assert np.abs(image.pixels.astype(int) - colours[0]).max() <= 2       # GIF's palette: within 2 levels
    assert any("first of its 3 frames" in note for note in image.notes), image.notes
    still = tmp_path / f"one{suffix}"
    frames[0].save(still)
    assert not any("frames" in note for note in read_image(still).notes)
