"""Files the project did not write, bounded in what they may allocate: npz bombs (compressed and
forged headers), YAML alias and merge bombs, JSON nested a million deep, torch archives whose
records declare more than they hold. Each is refused by name before the allocation; genuine files
load as the libraries' own readers load them.

The bombs run in a subprocess with a memory cap (RLIMIT_AS) and a timeout, so a regression fails
the test instead of taking the machine down.
"""

from __future__ import annotations

import json
import re
import math
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from metrics.io.bounded import (BoundedReadError, check_zip_archive, iter_npz_rows, load_npz, read_json,
                                 read_npz_headers)
from metrics.options import MAX_YAML_VALUES, OptionsError, parse_yaml, read_yaml

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30


# -- crafted npz files -----------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A version 1.0 .npy magic and header, as numpy writes it (independent of the reader tested)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _zip(path: Path, members: dict[str, tuple[bytes, int, int]]) -> Path:
    """A zip written field by field: name -> (deflated bytes, declared uncompressed size, crc32).

    zipfile cannot write a member whose declared size is not what it compressed itself."""
    local, central = b"", b""
    for name, (data, size, crc) in members.items():
        encoded = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(encoded), 0, 0, 0, 0, 0, len(local)) + encoded
        local += header + encoded + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(local + central + end)
    return path


def _deflated_zeros(header: bytes, mib: int) -> bytes:
    """A raw deflate stream of ``header`` followed by ``mib`` MiB of zeros, about 1 KB per MiB: one
    block of a MiB of zeros after a full flush (which resets the window) repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    return start + block * mib + compressor.flush()


def npz_bombs(folder: Path) -> dict[str, Path]:
    header = _npy_header((3 * GIB,), "|u1")
    zeros = _deflated_zeros(header, 3 * 1024)
    forged = _npy_header((1 << 40,))
    return {
        # an honest member: 3 GiB of zeros deflated to 3 MB (what np.savez_compressed would make)
        "zeros": _zip(folder / "zeros.npz", {"keypoints.npy": (zeros, len(header) + 3 * GIB, 0)}),
        # a header asking for 8 TiB in a member of 128 bytes
        "forged": _zip(folder / "forged.npz", {"keypoints.npy": (zlib.compress(forged)[2:-4], len(forged),
                                                                 zlib.crc32(forged))}),
    }


def test_the_zeros_bomb_really_unpacks_to_3_gib(tmp_path):
    """The crafted member is what it claims: its deflate stream yields the header then zeros, and
    the zip directory says 3 GiB (read here with zlib and zipfile, not with the code under test)."""
    path = npz_bombs(tmp_path)["zeros"]
    assert path.stat().st_size < 4 << 20
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        assert info.file_size == 3 * GIB + 128
        with archive.open(info) as member:
            assert np.lib.format.read_magic(member) == (1, 0)
            assert np.lib.format.read_array_header_1_0(member) == ((3 * GIB,), False, np.dtype("u1"))
            assert member.read(16 << 20) == bytes(16 << 20)


_BOMB_RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    cap = int(sys.argv[1]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import numpy as np
    from metrics.io.bounded import load_npz
    from metrics.options import read_yaml
    from metrics.dataset import ClipRecord
    out = {}
    for path in sys.argv[2:]:
        start = time.perf_counter()
        try:
            if path.endswith(".yaml"):
                read_yaml(path)
            elif "/reference/" in path:
                with np.load(path, allow_pickle=False) as npz:
                    npz["keypoints"]
            else:
                ClipRecord("anna", clip_id="c0", keypoints=path).load_keypoints()
            result = "loaded"
        except ValueError as error:
            result = str(error)
        except BaseException as error:
            result = "UNCAUGHT " + type(error).__name__ + ": " + str(error)[:200]
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking pytest process
        peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        out[path] = {"result": result, "seconds": time.perf_counter() - start, "peak_mib": peak_kib / 1024}
    print(json.dumps(out))
""")


def _billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 40) -> str:
    """Each level merges the previous one twice: PyYAML's loader itself builds 2**levels pairs."""
    lines = ["m0: &m0 {x: 1}"]
    for level in range(1, levels + 1):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}]}}")
    return "\n".join(lines) + "\n"


def test_bombs_are_refused_by_name_within_a_memory_cap(tmp_path):
    bombs = npz_bombs(tmp_path)
    (tmp_path / "reference").mkdir()
    references = [tmp_path / "reference" / "zeros.npz"]
    os.link(bombs["zeros"], references[0])
    (tmp_path / "laughs.yaml").write_text(_billion_laughs())
    (tmp_path / "merges.yaml").write_text(_merge_bomb())
    paths = [*bombs.values(), tmp_path / "laughs.yaml", tmp_path / "merges.yaml", *references]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _BOMB_RUNNER, "1024", *map(str, paths)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    # the reference: numpy's own reader asks for the 3 GiB and fails under the cap
    assert report[str(references[0])]["result"].startswith("UNCAUGHT MemoryError"), report
    for name in ("zeros", "forged"):
        entry = report[str(bombs[name])]
        assert entry["result"].startswith(f"{bombs[name]}: array 'keypoints' "), entry
        assert "refused" in entry["result"], entry
        assert entry["seconds"] < 5, entry
    assert "declares 8 TiB but the member holds 0 bytes" in report[str(bombs["forged"])]["result"]
    assert "more than the limit of 2 GiB" in report[str(bombs["zeros"])]["result"]
    for name in ("laughs", "merges"):
        entry = report[str(tmp_path / f"{name}.yaml")]
        assert entry["result"].startswith(f"{tmp_path / name}.yaml: refused: more than {MAX_YAML_VALUES} values"), entry
        assert entry["seconds"] < 5, entry
    assert max(entry["peak_mib"] for entry in report.values()) < 400, report


# -- npz files that are fine, and the limits ------------------------------------------------------


def test_genuine_npz_files_load_as_numpy_loads_them(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"pose": rng.normal(size=(30, 165)), "expression": rng.normal(size=(30, 100)).astype(np.float32),
              "names": np.array(["pelvis", "left_hip"]), "bytes": np.array([b"ab", b"c"]),
              "mask": rng.random((4, 5, 6)) > 0.5, "half": rng.normal(size=7).astype(np.float16),
              "big_endian": np.arange(6, dtype=">i4"), "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
              "record": np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8")]), "empty": np.zeros((0, 133, 3)),
              "scalar": np.float64(2.5)}
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        loaded = load_npz(path)
        with np.load(path, allow_pickle=False) as reference:      # the reference: numpy's reader
            assert sorted(loaded) == sorted(reference.files)
            for name in reference.files:
                expected = reference[name]
                assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape, name
                assert loaded[name].flags.f_contiguous == expected.flags.f_contiguous, name
                np.testing.assert_array_equal(loaded[name], expected)
        assert set(load_npz(path, ("pose",), optional=("names", "absent"))) == {"pose", "names"}
        headers = read_npz_headers(path)
        assert headers["pose"].shape == (30, 165) and headers["pose"].nbytes == 30 * 165 * 8


def test_the_limit_is_what_the_arrays_read_from_a_file_may_take(tmp_path):
    path = tmp_path / "two.npz"
    np.savez_compressed(path, a=np.zeros(100), b=np.zeros(28, dtype=np.float32))    # 800 + 112 bytes
    assert set(load_npz(path, max_bytes=912)) == {"a", "b"}
    with pytest.raises(BoundedReadError, match=r"two.npz: array 'b' .*would take 912 bytes, more than the limit of 911"):
        load_npz(path, max_bytes=911)
    assert set(load_npz(path, ("a",), max_bytes=800)) == {"a"}    # only what is read counts


@pytest.mark.parametrize("case", ["object", "missing", "not_zip", "truncated_header"])
def test_foreign_npz_files_are_refused_by_name(tmp_path, case):
    path = tmp_path / "bad.npz"
    if case == "object":
        np.savez(path, keypoints=np.array([1, None], dtype=object))
        message = r"array 'keypoints' \(\(2,\) object\): refused: holds Python objects"
    elif case == "missing":
        np.savez(path, other=np.zeros(3))
        message = r"no array 'keypoints' \(has other\)"
    elif case == "not_zip":
        path.write_bytes(b"not an npz")
        message = "not an npz file"
    else:
        _zip(path, {"keypoints.npy": (zlib.compress(b"\x93NUMPY\x01\x00")[2:-4], 8, zlib.crc32(b"\x93NUMPY\x01\x00"))})
        message = "array 'keypoints': unreadable header"
    with pytest.raises(BoundedReadError, match=f"^{path}: {message}"):
        load_npz(path, ("keypoints",))


def test_a_refused_keypoints_file_is_a_problem_of_the_dataset_not_a_crash(tmp_path):
    from metrics.dataset import ClipRecord, check_clip
    forged = npz_bombs(tmp_path)["forged"]
    record = ClipRecord("anna", "test", "c0", video=tmp_path / "c0.mp4", audio=tmp_path / "c0.wav",
                        motion=tmp_path / "c0.npz", fps=25.0, num_frames=10, width=8, height=8, keypoints=forged)
    np.savez(record.motion, pose=np.zeros((10, 165), np.float32), expression=np.zeros((10, 100), np.float32))
    problems = {problem.field: problem.message for problem in check_clip(record) if problem.field != "video"
                and problem.field != "audio"}
    assert set(problems) == {"keypoints"}, problems
    # its header's shape is the problem, read without reading the 8 TiB it declares
    assert problems["keypoints"].startswith("'keypoints' has shape (1099511627776,), expected (num_frames, 133, 3)")
    assert str(forged) in problems["keypoints"]
    # a header of the right shape that declares more than its member holds is refused by name
    forged_rows = _npy_header((10, 133, 3), "<f4")
    _zip(forged, {"keypoints.npy": (zlib.compress(forged_rows)[2:-4], len(forged_rows), zlib.crc32(forged_rows))})
    problems = {problem.field: problem.message for problem in check_clip(record)}
    assert "refused: declares 15.6 KiB but the member holds 0 bytes" in problems["keypoints"], problems


def test_rows_in_blocks_are_the_array_numpy_reads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"rows": rng.normal(size=(37, 5, 3)).astype(np.float32), "scalar": np.float64(2.5),
              "fortran": np.asfortranarray(rng.normal(size=(6, 4)))}
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    blocks = list(iter_npz_rows(tmp_path / "a.npz", "rows", block_bytes=4 * 5 * 3 * 8))    # 8 rows a block
    assert [len(block) for block in blocks] == [8, 8, 8, 8, 5]
    with np.load(tmp_path / "a.npz") as reference:
        assert np.array_equal(np.concatenate(blocks), reference["rows"])
        for name in ("scalar", "fortran"):
            (whole,) = iter_npz_rows(tmp_path / "a.npz", name)
            assert np.array_equal(whole, reference[name])
    with pytest.raises(BoundedReadError, match=r"a.npz: no array 'other'"):
        list(iter_npz_rows(tmp_path / "a.npz", "other"))
    with pytest.raises(BoundedReadError, match=r"'rows' .*: refused: 2.17 KiB, more than the limit of 1000 bytes"):
        list(iter_npz_rows(tmp_path / "a.npz", "rows", max_bytes=1000))


_VALIDATE_RUNNER = textwrap.dedent("""
    import json, resource, sys
    cap = int(sys.argv[1]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from metrics.dataset import ClipRecord, _check_motion
    counts = {}
    try:
        result = _check_motion(ClipRecord("anna", clip_id="c0", motion=sys.argv[2], num_frames=10), counts)
    except BaseException as error:
        result = "UNCAUGHT " + type(error).__name__ + ": " + str(error)[:200]
    peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"result": result, "counts": counts, "peak_mib": peak_kib / 1024}))
""")


def test_validation_scans_a_deflated_motion_array_in_blocks_within_a_memory_cap(tmp_path):
    """A 1.4 GiB 'pose' of zeros with one NaN, deflated to about 1.5 MB: dataset validation reports its
    frame count and the NaN's frame (placed here by hand) under a 1 GiB address-space cap, where reading
    the array whole would fail."""
    frames, width = 11 * (1 << 18), 129                      # 1419 MiB of float32: whole MiB blocks
    nan_frame, nan_column = 2_500_000, 7
    offset = (nan_frame * width + nan_column) * 4            # the NaN's byte in the array's data
    header = _npy_header((frames, width), "<f4")
    zeros, with_nan = bytearray(1 << 20), bytearray(1 << 20)
    with_nan[offset % (1 << 20):offset % (1 << 20) + 4] = struct.pack("<f", float("nan"))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    # after a full flush (which resets the window) a block compresses alone: a repeated one repeats
    deflated = {id(block): compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
                for block in (zeros, with_nan)}
    order = [with_nan if index == offset >> 20 else zeros for index in range(frames * width * 4 >> 20)]
    parts = [start, *(deflated[id(block)] for block in order), compressor.flush()]
    crc = zlib.crc32(header)
    for block in order:
        crc = zlib.crc32(block, crc)
    member = b"".join(parts)
    path = _zip(tmp_path / "c0.npz", {"pose.npy": (member, len(header) + frames * width * 4, crc)})
    assert path.stat().st_size < 4 << 20
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _VALIDATE_RUNNER, "1024", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["result"] == ["missing array 'expression'",
                                f"'pose' has 1 NaN and 0 inf values (first at frame {nan_frame})"], report
    assert report["counts"] == {"motion": [["'pose' frame count", frames]]}
    assert report["peak_mib"] < 600, report


def test_motion_import_refuses_an_npz_bomb_by_name(tmp_path):
    from bench.data.prepare.motion import MotionImportError, load_fit
    forged = npz_bombs(tmp_path)["forged"]
    with pytest.raises(MotionImportError, match=f"^{forged}: array 'keypoints'.*refused"):
        load_fit(forged)


# -- YAML and JSON --------------------------------------------------------------------------------


def test_yaml_with_anchors_and_merges_loads_as_pyyaml_loads_it():
    text = textwrap.dedent("""
        defaults: &defaults {lr: 0.0001, steps: 100, betas: [0.9, 0.999]}
        stage1: {<<: *defaults, steps: 500}
        stage2:
          <<: *defaults
          lr: 0.00002
        shared: [*defaults, *defaults]
    """)
    assert parse_yaml(text, "config") == yaml.safe_load(text)      # the reference: PyYAML itself
    assert parse_yaml("", "config") is None


def test_the_yaml_limit_counts_every_value_an_alias_expands_to():
    # a list of n aliases to a 2-element list: 1 (document) + 1 (outer list) + n * 3 values
    def document(n: int) -> str:
        return "x: &x [1, 2]\ny: [" + ", ".join(["*x"] * n) + "]\n"
    n = (MAX_YAML_VALUES - 7) // 3       # the mapping, key x, x's 3 values, key y, list y: 7 + 3n
    assert parse_yaml(document(n), "ok") == yaml.safe_load(document(n))
    with pytest.raises(OptionsError, match=f"^big: refused: more than {MAX_YAML_VALUES} values"):
        parse_yaml(document(n + 1), "big")


@pytest.mark.parametrize("text, message", [("a: &a [*a]\n", "an alias refers to a node that contains it"),
                                           ("[" * 5000 + "]" * 5000, "nested too deeply"),
                                           ("a: [1, 2\n", "not valid YAML")],
                         ids=["recursive", "deep", "invalid"])
def test_yaml_that_cannot_be_options_is_refused_by_name(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(OptionsError, match=f"^{path}: .*{message}"):
        read_yaml(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# the options\n# to come\n", "---\n"])
def test_an_options_file_with_no_document_is_refused_and_an_empty_mapping_is_the_defaults(tmp_path, text):
    # read as {}, an empty file trained IMAC on the schema's defaults, which no packaged config has
    assert yaml.safe_load(text) is None          # what PyYAML makes of it: no document
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(OptionsError, match=f"^{path}: empty: no options in it$"):
        read_yaml(path)
    path.write_text("{}\n")
    assert read_yaml(path) == {}


def test_every_command_refuses_an_empty_options_file_before_writing(tmp_path, capsys):
    from bench.cli import main as bench_main
    from imac.cli import main as imac_main
    from metrics.cli import main as metrics_main
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    calls = {"imac train": lambda: imac_main(["train", "stage1", "--config", str(empty),
                                             f"train.output={tmp_path / 'out'}"]),
             "imac-bench run": lambda: bench_main(["run", "--methods", "s2g", "--config", str(empty),
                                                  "--out", str(tmp_path / "out")]),
             "python -m metrics compute": lambda: metrics_main(["compute", "--options", str(empty), "--real",
                                                               str(tmp_path), "--fake", str(tmp_path),
                                                               "--out", str(tmp_path / "out" / "r")])}
    for prog, call in calls.items():
        assert call() == 2, prog
        assert capsys.readouterr().err == f"{prog}: error: {empty}: empty: no options in it\n"
        assert not (tmp_path / "out").exists(), prog


def test_bench_yaml_files_are_bounded_too(tmp_path):
    from bench.check import read_tolerances
    from bench.methods.command import parse_methods_file
    path = tmp_path / "file.yaml"
    path.write_text(_billion_laughs(6))
    for reader in (read_tolerances, parse_methods_file):
        with pytest.raises(ValueError, match=f"^{path}: refused: more than {MAX_YAML_VALUES} values"):
            reader(path)


def test_deep_json_is_refused_by_name_not_a_recursion_error(tmp_path):
    from metrics.dataset import validate_dataset
    path = tmp_path / "card.json"
    path.write_text("[" * 1_000_000)
    with pytest.raises(BoundedReadError, match=f"^{path}: refused: JSON nested too deeply"):
        read_json(path)
    with pytest.raises(BoundedReadError, match=f"^{path}: refused: .* more than the 1 KiB"):
        read_json(path, max_bytes=1024)
    path.write_text(json.dumps({"a": [1, 2.5, "x"]}))
    assert read_json(path) == {"a": [1, 2.5, "x"]}
    (tmp_path / "manifest.jsonl").write_text("[" * 1_000_000 + "\n")
    problems = validate_dataset(tmp_path)
    assert [str(problem) for problem in problems] == ["manifest.jsonl line 1: json: invalid JSON: nested too deeply"]


def test_a_long_integer_in_json_is_refused_by_name(tmp_path):
    from bench.results import read_results
    from metrics.dataset import validate_dataset
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": ' + "9" * 5000 + "}")
    said = "refused: an integer of 5000 digits (at most 100 are read)"
    with pytest.raises(BoundedReadError, match=f"^{path}: {re.escape(said)}$"):
        read_json(path)
    with pytest.raises(ValueError, match=f"^{path}: {re.escape(said)}$"):
        read_results(path)
    path.write_text(json.dumps({"seed": -(2 ** 63), "big": 10 ** 99}))      # 19 and 100 digits: read
    assert read_json(path) == {"seed": -(2 ** 63), "big": 10 ** 99}
    (tmp_path / "manifest.jsonl").write_text('{"num_frames": ' + "1" * 101 + "}\n")
    problems = validate_dataset(tmp_path)
    assert [str(problem) for problem in problems] == [
        "manifest.jsonl line 1: json: refused: an integer of 101 digits (at most 100 are read)"]


# -- torch archives -------------------------------------------------------------------------------


def test_a_torch_archive_is_checked_from_its_zip_directory(tmp_path):
    import torch
    from metrics.i3d import load_i3d
    state = tmp_path / "state.pt"
    torch.save({"w": torch.arange(10.0)}, state)
    assert check_zip_archive(state) is True
    np.testing.assert_array_equal(torch.load(state, weights_only=True)["w"].numpy(), np.arange(10.0))
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02}q\x00.")
    assert check_zip_archive(tmp_path / "legacy.pt") is False
    with pytest.raises(BoundedReadError, match=f"^{state}: refused: .*more than the limit of 100 bytes"):
        check_zip_archive(state, max_bytes=100)
    # a record that declares 3 GiB (deflated zeros): refused before torch would unpack it
    forged = tmp_path / "forged.pt"
    with zipfile.ZipFile(state) as archive:
        records = {info.filename: (zlib.compress(archive.read(info))[2:-4], info.file_size, info.CRC)
                   for info in archive.infolist()}
    records["archive/data/1"] = (_deflated_zeros(b"", 3 * 1024), 3 * GIB, 0)
    _zip(forged, records)
    with pytest.raises(BoundedReadError, match=f"^{forged}: refused: its records unpack to 3 GiB"):
        check_zip_archive(forged, max_bytes=2 * GIB)
    with pytest.raises(ValueError, match=f"^{forged}: refused: its records unpack to 3 GiB, more than the limit of 1 GiB"):
        load_i3d(forged)



def test_a_model_card_nested_too_deeply_is_named(tmp_path):
    from bench.baselines.keypoint_motion import CARD, KeypointMotion
    (tmp_path / CARD).write_text("[" * 1_000_000)
    with pytest.raises(BoundedReadError, match=f"^{tmp_path / CARD}: refused: JSON nested too deeply"):
        KeypointMotion.load(tmp_path)


def test_a_refused_cache_entry_is_computed_again(tmp_path, caplog):
    from metrics.io.cache import VideoCache
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"the video's bytes")
    cache = VideoCache(tmp_path / "cache", "keypoints", "toy")
    cache.store(video, keypoints=np.ones((2, 133, 3), np.float32))
    np.testing.assert_array_equal(cache.load(video)["keypoints"], np.ones((2, 133, 3), np.float32))
    entry = cache.path_for(video)
    entry.write_bytes(npz_bombs(tmp_path)["forged"].read_bytes())
    assert cache.load(video) is None
    assert f"{entry}: array 'keypoints'" in caplog.text and "ignoring the cached entry" in caplog.text


@pytest.mark.parametrize("text, number", [("1e-6", 1e-6), ("5E-2", 0.05), ("2e+1", 20.0), ("-3e5", -3e5),
                                          ("1.0e-4", 1e-4), ("0.5", 0.5), ("7", 7)])
def test_numbers_in_exponent_notation_read_as_yaml_1_2_and_python_read_them(tmp_path, text, number):
    # YAML 1.2 core schema and Python's float(): the number on the right (PyYAML's YAML 1.1 resolver
    # reads '1e-6' as a string); text that only looks numeric stays text
    assert parse_yaml(text, "x") == number and type(parse_yaml(text, "x")) is type(number)
    assert parse_yaml("1e", "x") == "1e" and parse_yaml("e5", "x") == "e5" and parse_yaml("1e-4x", "x") == "1e-4x"
    from bench.check import read_tolerances

    path = tmp_path / "tolerances.yaml"
    path.write_text(f"default: {{abs: {text}, rel: 0}}\nmetrics:\n  fgd: {{rel: {text}}}\n")
    if number >= 0:
        tolerances = read_tolerances(path)
        assert tolerances["default"]["abs"] == number and tolerances["metrics"]["fgd"] == {"rel": number}
    else:
        with pytest.raises(ValueError, match="must be a finite number >= 0"):
            read_tolerances(path)


def test_plain_scalars_resolve_as_yaml_1_2_core_schema_example_10_9():
    # YAML 1.2.2, Example 10.9 "Core Tag Resolution", and the values the spec gives them
    text = textwrap.dedent("""
        A null: null
        Also a null: # Empty
        Not a null: ""
        Booleans: [ true, True, false, FALSE ]
        Integers: [ 0, 0o7, 0x3A, -19 ]
        Floats: [ 0., -0.0, .5, +12e03, -2E+05 ]
        Also floats: [ .inf, -.Inf, +.INF, .NAN ]
    """)
    values = parse_yaml(text, "x")
    assert values["A null"] is None and values["Also a null"] is None and values["Not a null"] == ""
    assert values["Booleans"] == [True, True, False, False]
    assert values["Integers"] == [0, 7, 58, -19] and all(type(v) is int for v in values["Integers"])
    assert values["Floats"] == [0.0, -0.0, 0.5, 12000.0, -200000.0] and all(type(v) is float for v in values["Floats"])
    infinite = values["Also floats"]
    assert infinite[:3] == [math.inf, -math.inf, math.inf] and math.isnan(infinite[3])


@pytest.mark.parametrize("text, value", [("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("1:30", "1:30"),
                                         ("1_000", "1_000"), ("2001-12-14", "2001-12-14"), ("0b101", "0b101"),
                                         ("017", 17)])
def test_what_only_yaml_1_1_reads_as_a_number_bool_or_date_is_text_or_decimal(text, value):
    # YAML 1.1 (PyYAML's resolver) reads these as true, false, true, false, 90, 1000, a date, 5 and octal 15;
    # the 1.2 core schema has none of those forms ("017" is decimal there)
    assert parse_yaml(f"v: {text}", "x") == {"v": value}
    assert yaml.safe_load(f"v: {text}")["v"] != value                  # the YAML 1.1 reading differs


def test_an_imac_config_reads_no_as_the_word_and_a_time_is_not_a_number():
    from imac.config import ConfigError, load_config

    assert load_config("tiny", ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"stage2.lr: expected a number, got '1:30'"):
        load_config("tiny", ["stage2.lr=1:30"])


def test_a_key_given_twice_in_a_json_object_is_refused_by_name_and_a_byte_order_mark_read_past(tmp_path):
    """json keeps the last of two equal keys without a word: a second "seed" in study.json reshuffled every
    participant's plan, a second "video" in a manifest line scored another file. And a byte order mark (a
    Windows editor's) was refused by userstudy's reader while the project's read past it."""
    from metrics.dataset import validate_dataset
    from userstudy.jsonfile import JSONFileError
    from userstudy.jsonfile import read_json as read_study_json

    path = tmp_path / "config.json"
    path.write_text('{"a": {"seed": 1, "b": 2, "seed": 3}}')
    said = "refused: the key 'seed' appears twice in one object"
    with pytest.raises(BoundedReadError, match=f"^{path}: {re.escape(said)}"):
        read_json(path)
    with pytest.raises(JSONFileError, match=f"^{path}: {re.escape(said)}"):
        read_study_json(path)
    (tmp_path / "manifest.jsonl").write_text('{"video": "a.mp4", "video": "b.mp4"}\n')
    assert [str(p) for p in validate_dataset(tmp_path)] == [
        "manifest.jsonl line 1: json: refused: the key 'video' appears twice in one object (JSON readers keep "
        "either value: say it once)"]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"title": "A", "seed": 7}).encode())
    assert read_json(path) == read_study_json(path) == {"title": "A", "seed": 7}
    path.write_text(json.dumps([{"k": 1}, {"k": 2}]))          # the same key in two objects: fine
    assert read_json(path) == read_study_json(path) == [{"k": 1}, {"k": 2}]
