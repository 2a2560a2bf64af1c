"""Broken and hostile files: pickle bombs, leftovers of killed writers, clashing source names,
network files of the wrong shape. Each is refused by name (or cleaned up), and nothing else is lost.

The bombs run in a subprocess with a memory cap (RLIMIT_AS) and a timeout, so a regression fails
the test instead of taking the machine down.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bench.data.prepare.safe_pickle import PickleLimits, PickleReadError, load_pickle
from metrics.io import files
from metrics.io.files import atomic_path, remove_stale_temporaries, write_text_atomic

REPO = Path(__file__).resolve().parents[1]


# -- pickle bombs ------------------------------------------------------------------------------------


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _shared_levels(levels: int) -> bytes:
    """Opcodes pushing l_levels, where l_0 = ['x'] and l_(k+1) = [l_k, l_k] (one memo slot, reused):
    2**levels elements once every shared reference is expanded, from 10 bytes a level."""
    data = b"(X\x01\x00\x00\x00xlq\x000"
    for _ in range(levels):
        data += b"(h\x00h\x00lq\x000"
    return data + b"h\x00"


# name -> (file content, what it asks for)
BOMBS = {
    "bytearray": (b"\x80\x02" + _global("builtins", "bytearray") + b"J" + struct.pack("<i", 1 << 30) + b"\x85R.",
                  "bytearray(2**30): 1 GiB"),
    "bytes": (b"\x80\x02" + _global("builtins", "bytes") + b"J" + struct.pack("<i", (1 << 31) - 1) + b"\x85R.",
              "bytes(2**31 - 1): 2 GiB"),
    "object_array": (b"\x80\x02" + _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
                     + b"J" + struct.pack("<i", 1 << 29) + b"\x85C\x01O\x87R.",
                     "an object array of 2**29 Nones: 4.3 GB"),
    "array_state": (b"\x80\x02" + _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
                    + b"K\x00\x85C\x01b\x87R" + b"(K\x01J" + struct.pack("<i", 1 << 30) + b"\x85"
                    + _global("numpy", "dtype") + b"X\x02\x00\x00\x00f8\x89\x88\x87R" + b"\x89C\x00tb.",
                    "an array state of 2**30 float64 with no data"),
    "shared_str": (b"\x80\x02" + _global("builtins", "str") + _shared_levels(60) + b"\x85R.",
                   "str() of 2**60 shared elements"),
    "shared_fit": (b"\x80\x02}X\x09\x00\x00\x00body_pose" + _shared_levels(60) + b"s.",
                   "a fit whose body_pose expands to 2**60 elements"),
    "deep": (b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".", "100000 nested lists"),
    "cycle": (b"\x80\x02]q\x00h\x00a.", "a list that contains itself"),
    "bytearray8": (b"\x80\x05\x96" + struct.pack("<Q", 1 << 31) + b".", "a bytearray that claims 2 GiB"),
    "empty_sets": (b"\x80\x04" + b"\x8f" * 1_000_000 + b".", "a million empty sets: 220 MB from 1 MB"),
    "tuple_key": (b"\x80\x02}" + _shared_levels(0).replace(b"l", b"t") + b"Ns.",
                  "a dict keyed by a tuple"),
}

_BOMB_RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    cap = int(sys.argv[1]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import numpy as np
    from bench.data.prepare.safe_pickle import PickleReadError, load_pickle
    from bench.data.prepare.motion import MotionImportError, load_fit
    out = {}
    for path in sys.argv[2:]:
        start = time.perf_counter()
        try:
            if path.endswith("shared_fit.pkl"):
                load_fit(path)
            else:
                load_pickle(path)
            result = "loaded"
        except (PickleReadError, MotionImportError) as error:
            result = str(error)
        except BaseException as error:
            result = "UNCAUGHT " + type(error).__name__ + ": " + str(error)[:200]
        out[path] = {"result": result, "seconds": time.perf_counter() - start,
                     # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking pytest process
                     "peak_mib": next(int(line.split()[1]) for line in open("/proc/self/status")
                                      if line.startswith("VmHWM:")) / 1024}
    print(json.dumps(out))
""")


def test_pickle_bombs_are_refused_by_name_within_a_memory_cap(tmp_path):
    paths = []
    for name, (data, _) in BOMBS.items():
        paths.append(tmp_path / f"{name}.pkl")
        paths[-1].write_bytes(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _BOMB_RUNNER, "1024", *map(str, paths)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    for path in paths:
        entry = report[str(path)]
        assert entry["result"].startswith(f"{path}: "), (path.name, BOMBS[path.stem][1], entry)
        assert "refused" in entry["result"] or "cannot read" in entry["result"], entry
        assert entry["seconds"] < 20, (path.name, entry)
    # the whole process, numpy included, stayed far below what any bomb asks for
    assert max(entry["peak_mib"] for entry in report.values()) < 400, report


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_genuine_pickles_load_as_the_standard_unpickler_loads_them(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    obj = {
        "body_pose": rng.normal(size=(30, 21, 3)), "expression": rng.normal(size=(30, 100)).astype(np.float32),
        "names": np.array(["a", "bc"]), "record": np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        "objects": np.array([1, "x", None], dtype=object), "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "scalar": np.float32(2.5), "count": np.int64(7), "big": 2 ** 100, "complex": 1 + 2j,
        "frames": [{"score": float(i), "box": (1, 2, 3, 4), 5: None} for i in range(50)],
        "ordered": collections.OrderedDict(b=1, a=2), "set": {1, "x", b"y"}, "frozen": frozenset({2}),
        "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"), "empty": np.zeros((0, 3)),
    }
    path = tmp_path / "fit.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    expected = pickle.loads(path.read_bytes())          # the reference: CPython's own unpickler
    loaded = load_pickle(path)
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert type(loaded[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
            assert loaded[key].flags.f_contiguous == value.flags.f_contiguous, key
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value, key
    assert list(loaded["ordered"]) == ["b", "a"]


def test_the_budget_is_what_a_file_may_allocate(tmp_path):
    """bytearray(n) loads up to the budget and is refused one byte over (before it is built)."""
    budget = 1 << 20
    path = tmp_path / "sized.pkl"
    for size, loads in ((budget // 2, True), (budget, False)):
        path.write_bytes(b"\x80\x02" + _global("builtins", "bytearray") + b"J" + struct.pack("<i", size) + b"\x85R.")
        if loads:
            assert load_pickle(path, PickleLimits(budget_bytes=budget)) == bytearray(size)
        else:
            with pytest.raises(PickleReadError, match="more than 1 MiB"):
                load_pickle(path, PickleLimits(budget_bytes=budget))


def test_shared_references_within_the_budget_load_and_over_it_are_refused(tmp_path):
    path = tmp_path / "shared.pkl"
    path.write_bytes(b"\x80\x02" + _shared_levels(8) + b".")
    loaded = load_pickle(path)                        # 256 leaves: fine
    leaves, stack = 0, [loaded]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        else:
            leaves += 1
    assert leaves == 2 ** 8
    path.write_bytes(b"\x80\x02" + _shared_levels(30) + b".")
    with pytest.raises(PickleReadError, match="expands to more than"):
        load_pickle(path)
    with pytest.raises(PickleReadError, match="nested more than 5 deep"):
        load_pickle(path, PickleLimits(max_depth=5))


@pytest.mark.parametrize("data", [b"", b"\x80\x02", b"\x80\x02]q\x00(K\x01", b"\x80\x02cos\nsystem\n.", b"garbage"],
                         ids=["empty", "truncated", "unfinished", "forbidden", "garbage"])
def test_damaged_pickles_are_refused_by_name(tmp_path, data):
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    with pytest.raises(PickleReadError, match=str(path)):
        load_pickle(path)


# -- leftovers of killed writers -----------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_write_removes_the_leftovers_of_dead_writers_and_keeps_live_ones(tmp_path):
    host = files._HOST
    dead, live = _dead_pid(), os.getppid()
    leftovers = {
        f".clip.mp4.tmp-{host}-{dead}-0123abcd.mp4": False,            # dead writer on this host
        f".clip.mp4.tmp-{host}-{live}-0123abcd.mp4": True,             # live writer: never touched
        ".clip.mp4.tmp-89abcdef.mp4": True,                             # older form, recent
        ".old.wav.tmp-89abcdef.wav": False,                             # older form, 7 h old
        f".clip.mp4.tmp-ffffffff-{dead}-0123abcd.mp4": True,           # another host, recent
        f".clip.npz.tmp-ffffffff-{live}-0123abcd.npz": False,          # another host, 7 h old
        f".model.tmp-{host}-{dead}-0123abcd": False,                   # a dead writer's folder
        f".model.old-{host}-{dead}-0123abcd": False,                   # retired after its replacement
        f".gone.old-{host}-{dead}-0123abcd": True,                     # the only copy of "gone"
        ".notes.tmp-0123abcd.txt": True,                                # not a name files.py makes
        "clip.mp4.tmp-0123abcd.mp4": True,                              # not hidden: not ours
    }
    for name in leftovers:
        path = tmp_path / name
        if "model" in name or "gone" in name:
            (path / "sub").mkdir(parents=True)
            (path / "sub" / "weights.bin").write_bytes(b"x")
        else:
            path.write_bytes(b"partial")
    (tmp_path / "model").mkdir()
    for name in (".old.wav.tmp-89abcdef.wav", f".clip.npz.tmp-ffffffff-{live}-0123abcd.npz",
                 ".notes.tmp-0123abcd.txt"):
        _age(tmp_path / name, 7 * 3600)
    write_text_atomic(tmp_path / "manifest.jsonl", "{}\n")
    remaining = {path.name for path in tmp_path.iterdir()}
    assert remaining == {name for name, kept in leftovers.items() if kept} | {"model", "manifest.jsonl"}


def test_a_live_writers_folder_on_another_host_is_kept_while_files_inside_change(tmp_path):
    folder = tmp_path / ".model.tmp-ffffffff-1-0123abcd"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"x")
    _age(folder, 7 * 3600)
    _age(folder / "sub", 7 * 3600)                # only the file deep inside is recent
    assert remove_stale_temporaries(tmp_path) == []
    _age(folder / "sub" / "weights.bin", 7 * 3600)
    assert remove_stale_temporaries(tmp_path) == [folder]


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from metrics.io.files import atomic_path
    with atomic_path(sys.argv[1]) as temporary:
        temporary.write_bytes(b"half a video")
        print(temporary.name, flush=True)
        time.sleep(60)
""")


def test_a_writer_killed_with_sigkill_is_cleaned_up_by_the_next_write_not_while_it_runs(tmp_path):
    target = tmp_path / "clips" / "clip.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        leftover = target.parent / writer.stdout.readline().strip()
        assert leftover.is_file()
        # while it runs, another process writing the same folder leaves its file alone
        subprocess.run([sys.executable, "-c", "import sys; from metrics.io.files import write_text_atomic; "
                        "write_text_atomic(sys.argv[1], 'x')", str(target.parent / "other.txt")],
                       env=env, check=True, timeout=60)
        assert leftover.is_file()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert leftover.is_file() and not target.exists()
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"a whole video")
    assert sorted(path.name for path in target.parent.iterdir()) == ["clip.mp4", "other.txt"]


# -- sources whose names map to one clip id -----------------------------------------------------------


@pytest.mark.parametrize("names", [("talk 1.mp4", "talk_1.mp4"), ("a/b.mp4", "a__b.mp4"),
                                   ("talk.mp4", "talk.mov"), ("Talk.mp4", "talk.mkv"), ("_.mp4", "video.mp4")],
                         ids=["space", "folder", "suffix", "case", "empty"])
def test_sources_with_one_name_are_refused_naming_both_files(tmp_path, names):
    from bench.data.prepare.sources import SourceNameClash, clip_id, list_sources, source_name
    for name in names + ("other.mp4",):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(SourceNameClash) as raised:
        list_sources(tmp_path)
    assert all(f"'{name}'" in str(raised.value) for name in names), str(raised.value)
    (tmp_path / names[1]).unlink()
    sources = list_sources(tmp_path)
    assert len(sources) == 2
    # the reference: ids of distinct sources differ, the property the refusal protects
    ids = {clip_id(source_name(tmp_path, source), 0).casefold() for source in sources}
    assert len(ids) == 2


def test_prepare_refuses_clashing_sources_in_one_line_before_decoding(tmp_path, capsys):
    from bench.cli import main
    raw = tmp_path / "raw"
    for name in ("talk 1.mp4", "talk_1.mp4", "a/b.mp4", "a__b.mp4"):
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes(b"not decoded")
    status = main(["data", "prepare", str(raw), "--identity", "x", "--out", str(tmp_path / "out"), "--quiet"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1, error
    assert "'talk 1.mp4' and 'talk_1.mp4'" in error and "'a/b.mp4' and 'a__b.mp4'" in error, error
    assert not (tmp_path / "out" / "prepare" / "x" / "sources").exists()


# -- network files of the wrong kind ------------------------------------------------------------------


def _archive(path: Path, module) -> Path:
    import torch
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def _wrong_i3d_archives(tmp_path: Path) -> dict[str, Path]:
    import torch

    class WrongShape(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return x.flatten(1)[:, :10]

    class WrongSignature(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :400]

    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
            return x.flatten(1)[:, :400], x.flatten(1)[:, :400]

    (tmp_path / "text.pt").write_bytes(b"not a model at all")
    return {"wrong_shape": _archive(tmp_path / "wrong_shape.pt", WrongShape()),
            "wrong_signature": _archive(tmp_path / "wrong_signature.pt", WrongSignature()),
            "tuple": _archive(tmp_path / "tuple.pt", Pair()), "text": tmp_path / "text.pt"}


def test_i3d_archives_of_the_wrong_kind_are_named_at_loading(tmp_path):
    from metrics.i3d import I3DNetworkError, load_i3d
    archives = _wrong_i3d_archives(tmp_path)
    for name, path in archives.items():
        with pytest.raises(ValueError) as raised:
            load_i3d(path)
        assert str(raised.value).startswith(str(path)), (name, str(raised.value))
        if name != "text":
            assert isinstance(raised.value, I3DNetworkError), name


def test_metrics_compute_with_a_wrong_i3d_prints_one_line_and_exits_2(tmp_path, capsys):
    from metrics.cli import main
    from metrics.io.video import write_video
    path = _wrong_i3d_archives(tmp_path)["wrong_shape"]
    rng = np.random.default_rng(0)
    for side in ("real", "fake"):
        write_video(tmp_path / side / "anna" / "c0.mp4", rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), 25)
    status = main(["compute", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics", "fvd",
                   "--i3d", str(path), "--quiet"])
    error = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert status == 2 and len(error) == 1, error
    assert f"{path}: the I3D archive returned (1, 10)" in error[0]


@pytest.fixture(scope="module")
def autoencoder_folder(tmp_path_factory):
    from metrics.skeleton_ae import AutoencoderConfig, SkeletonAutoencoder, save_autoencoder
    import torch
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ae") / "ae"
    save_autoencoder(SkeletonAutoencoder(AutoencoderConfig(points=5, window=8, hidden=16, latent=4)), folder, {})
    return folder


@pytest.mark.parametrize("case", ["not_json", "no_model", "huge", "odd_window", "not_safetensors",
                                  "other_shapes"])
def test_broken_autoencoder_files_are_named(tmp_path, autoencoder_folder, case):
    import shutil
    from metrics.skeleton_ae import AutoencoderFileError, load_autoencoder
    folder = tmp_path / "ae"
    shutil.copytree(autoencoder_folder, folder)
    config, weights = folder / "config.json", folder / "model.safetensors"
    meta = json.loads(config.read_text())
    named = config
    if case == "not_json":
        config.write_text("{")
    elif case == "no_model":
        config.write_text("[]")
    elif case == "huge":       # would build a 2e9-channel convolution before reading any weight
        config.write_text(json.dumps({**meta, "model": {**meta["model"], "points": 10 ** 9}}))
    elif case == "odd_window":
        config.write_text(json.dumps({**meta, "model": {**meta["model"], "window": 7}}))
    elif case == "not_safetensors":
        weights.write_bytes(b"\x00" * 64)
        named = weights
    else:                      # a valid safetensors file of another autoencoder
        config.write_text(json.dumps({**meta, "model": {**meta["model"], "hidden": 8}}))
        named = weights
    with pytest.raises(AutoencoderFileError, match=f"^{named}: "):
        load_autoencoder(folder)


def test_a_sound_autoencoder_folder_still_loads(autoencoder_folder):
    from metrics.skeleton_ae import load_autoencoder
    model, meta = load_autoencoder(autoencoder_folder)
    assert model.config.points == 5 and meta["model"]["latent"] == 4

