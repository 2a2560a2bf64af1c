"""The shared infrastructure of metrics: device choice, the file hash, atomic model folders."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest
import torch

from metrics.device import resolve_device
from metrics.io.cache import file_hash
from metrics.io.files import atomic_folder, file_sha256, replace_folder, update_digest_from_file


@pytest.mark.skipif(not os.path.isfile("/proc/cpuinfo") or shutil.which("lscpu") is None,
                    reason="needs Linux's /proc/cpuinfo and util-linux's lscpu")
def test_processor_names_the_cpu_and_digests_what_lscpu_says_of_it():
    from metrics.device import processor

    def lscpu(*args):
        return subprocess.run(["lscpu", *args], capture_output=True, text=True, check=True,
                              env={**os.environ, "LC_ALL": "C"}).stdout

    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu().splitlines())}
    caches = {row.split()[0]: int(row.split()[1]) for row in lscpu("-C=NAME,ONE-SIZE", "--bytes").splitlines()[1:]}
    text = "\n".join([f"flags: {' '.join(sorted(set(fields['Flags'].split())))}", f"cpu family: {fields['CPU family']}",
                      f"model: {fields['Model']}", f"stepping: {fields['Stepping']}",
                      f"caches: {', '.join(f'{name} {size}' for name, size in sorted(caches.items()))}"])
    described = processor()
    assert described["cpu"] == fields["Model name"]
    assert described["cpu_id"] == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert described["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_resolve_device_auto_follows_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device() == resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "meta"])
def test_resolve_device_returns_a_known_name_as_given(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)      # as on a machine with 2 GPUs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device(name) == name


def test_resolve_device_names_a_gpu_torch_does_not_see(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device {name!r}: torch .* sees no CUDA GPU"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device 'cuda:2': torch sees 2 CUDA GPU\(s\), numbered 0-1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "Auto"])
def test_resolve_device_names_an_unknown_value(name):
    with pytest.raises(ValueError, match=f"device {name!r}"):
        resolve_device(name)


def test_file_sha256_matches_hashlib_over_several_chunks(tmp_path):
    data = os.urandom((1 << 20) + 12345)  # more than one default chunk, not a multiple of it
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(path) == expected
    assert file_sha256(str(path), chunk_size=4096) == expected
    assert file_sha256(path, chunk_size=len(data) * 2) == expected
    assert file_hash(path) == expected
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_update_digest_from_file_hashes_files_one_after_the_other(tmp_path):
    (tmp_path / "a").write_bytes(b"first" * 1000)
    (tmp_path / "b").write_bytes(b"second")
    digest = hashlib.sha256()
    for name in ("a", "b"):
        update_digest_from_file(digest, tmp_path / name, chunk_size=7)
    assert digest.hexdigest() == hashlib.sha256(b"first" * 1000 + b"second").hexdigest()


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_replace_folder_replaces_an_existing_folder_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staged = tmp_path / ".model.tmp"
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    assert replace_folder(staged, target) == target
    assert _names(target) == ["new.txt"]
    assert _names(tmp_path) == ["model"]
    # No target yet: a plain rename.
    staged.mkdir()
    replace_folder(staged, tmp_path / "fresh")
    assert _names(tmp_path) == ["fresh", "model"]


def test_replace_folder_restores_the_old_folder_when_the_move_fails(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "missing", target)
    assert _names(target) == ["old.txt"]
    assert _names(tmp_path) == ["model"]


def test_atomic_folder_replaces_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "deep" / "model"
    with atomic_folder(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".model.tmp-")
        assert temporary.is_dir() and not any(temporary.iterdir())
        (temporary / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_folder(target) as temporary:
            (temporary / "weights").write_text("half")
            raise RuntimeError("crash")
    assert (target / "weights").read_text() == "v1"
    assert _names(target.parent) == ["model"]
