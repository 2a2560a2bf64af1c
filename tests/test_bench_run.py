"""The benchmark runner: registry, resumption, atomic outputs, controls, external methods, report, check."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.check import check_run, compare, read_table, update_baseline
from bench.cli import main as bench_main
from bench.config import config_from_dict, load_bench_config
from bench.methods import UnknownMethodError, make_method
from bench.methods.base import Method
from metrics.dataset import ClipRecord
from bench.methods.external import ExternalVideoError, check_video, format_command, parse_methods_file
from bench.report import control_checks, failed_checks, write_report
from bench.runner import RunMismatchError, RunSettings, conform_frames, run_benchmark
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.io.video import VideoReader, probe_video

FAST = {"metrics": ["fgd", "div", "bas"], "fgd_autoencoder_steps": 20, "methods": {}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=2, clips=4, test_clips=2, size=64,
                                              min_seconds=3.6, max_seconds=4.0), progress=False)
    return root


def real_frames(clip: ClipRecord) -> np.ndarray:
    with VideoReader(clip.video) as reader:
        return reader.read(0, len(reader))


class CopyMethod(Method):
    """Returns the real test video (a perfect method), optionally crashing on one clip."""

    name, label = "copy", "Copy of the real video"

    def __init__(self, crash_on: str | None = None, calls: list | None = None) -> None:
        self.crash_on = crash_on
        self.calls = calls if calls is not None else []

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        self.calls.append(clip.label)
        if clip.label == self.crash_on:
            raise RuntimeError("simulated crash")
        return real_frames(clip)


def settings(corpus: Path, out: Path, methods=("copy",), **kwargs) -> RunSettings:
    return RunSettings(methods=list(methods), out=out, data=corpus, config=config_from_dict(dict(FAST)),
                       progress=False, **kwargs)


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    run_benchmark(settings(corpus, out, custom={"copy": CopyMethod}))
    write_report(out)
    return out


# -- registry and configuration --------------------------------------------------------------------


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethodError) as error:
        make_method("imac-xl")
    message = str(error.value)
    for name in ("imac", "imac-no-ref", "s2g", "mya", "gt", "static", "shuffled"):
        assert name in message


def test_cli_unknown_method_exits_2_before_any_work(corpus, tmp_path, capsys):
    code = bench_main(["run", "--methods", "imac,nope", "--data", str(corpus), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "work").exists()


def test_bench_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="metric"):
        config_from_dict({"metric": ["fgd"]})
    with pytest.raises(ValueError, match="corpus: unknown key.*sizes"):
        config_from_dict({"corpus": {"sizes": 64}})
    assert load_bench_config("toy").corpus.size == 128
    with pytest.raises(FileNotFoundError, match="toy"):
        load_bench_config("nonexistent")


def test_ablations_share_the_imac_options_and_reject_typos():
    from bench.methods.imac_method import IMAC_VARIANTS, IMACOptions

    assert set(IMAC_VARIANTS) == {"imac", "imac-no-ref", "imac-no-motion", "imac-no-stage1", "imac-no-slowfast"}
    with pytest.raises(ValueError, match="samples_steps"):
        IMACOptions.from_dict({"samples_steps": 3})


# -- conforming frames ------------------------------------------------------------------------------


def test_conform_frames_resizes_and_fits_the_length(corpus):
    clip = ClipRecord(identity="a", clip_id="a_0", video=corpus, audio=corpus, fps=25.0, num_frames=10, width=64,
                      height=48)
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    frames[:, :, 16:] = 200
    out, changes = conform_frames(frames, clip)
    assert out.shape == (10, 48, 64, 3)
    assert changes == {"resized_from": [32, 32], "frames_generated": 12}
    assert out[:, :, :28].max() == 0 and out[:, :, 36:].min() == 200  # left/right halves survive
    short, changes = conform_frames(np.arange(7, dtype=np.uint8)[:, None, None, None].repeat(3, -1).repeat(48, 1)
                                    .repeat(64, 2), clip)
    assert changes == {"frames_generated": 7}
    assert [int(f[0, 0, 0]) for f in short] == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6]
    with pytest.raises(ValueError, match="a/a_0: a method must return uint8"):
        conform_frames(np.zeros((3, 8, 8, 3), np.float32), clip)


# -- a whole run --------------------------------------------------------------------------------------


def test_run_layout_controls_and_report(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    assert list(results["methods"]) == ["copy", "gt", "static", "shuffled"]
    clips = results["run"]["test_clips"]
    assert len(clips) == 4
    for method in results["methods"]:
        for label in clips:
            identity, clip_id = label.split("/")
            assert (finished_run / method / identity / f"{clip_id}.mp4").is_file()
    # the copy is re-encoded (crf 18) but the same motion: its FGD is tiny next to static's
    fgd = {m: results["methods"][m]["results"]["all"]["FGD"]["value"] for m in results["methods"]}
    assert fgd["gt"] == pytest.approx(0.0, abs=1e-9) and fgd["shuffled"] == pytest.approx(0.0, abs=1e-9)
    assert fgd["copy"] < 0.1 * fgd["static"]
    div = {m: results["methods"][m]["results"]["all"]["Diversity"]["value"] for m in results["methods"]}
    # static: no motion inside a clip; its diversity only comes from the 2 clips' different poses
    assert div["static"] < div["gt"]
    # shuffled: same video, the other clip's audio beside it
    gt_wav, shuffled_wav = (finished_run / "gt" / clips[0]).with_suffix(".wav"), (finished_run / "shuffled" / clips[0]).with_suffix(".wav")
    from metrics.io.audio import load_audio

    other = load_audio((finished_run / "gt" / clips[1]).with_suffix(".wav"), 16000)
    shuffled = load_audio(shuffled_wav, 16000)
    assert len(shuffled) == len(load_audio(gt_wav, 16000))
    n = min(len(other), len(shuffled))
    assert np.abs(shuffled[:n] - other[:n]).max() < 1e-3
    checks = {(c["metric"], c["expected"]): c["holds"] for c in results["control_checks"]}
    assert checks[("FGD", "gt < static")] and checks[("Diversity", "static < gt")]
    report = (finished_run / "report.md").read_text()
    assert "FGD ↓" in report and "Div ↑" in report and results["protocol_label"] in report
    assert "## Identity:" in report and "Control checks" in report
    for plot in ("metrics.png", "frames.png", "beats.png"):
        assert (finished_run / "plots" / plot).stat().st_size > 1000
    rows = read_table(finished_run / "metrics.csv")
    assert ("copy", "all", "FGD") in rows and rows[("copy", "all", "FGD")]["ci_low"] != ""


def test_generated_videos_carry_the_audio_and_the_real_size(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    for label in results["run"]["test_clips"]:
        identity, clip_id = label.split("/")
        info = probe_video(finished_run / "copy" / identity / f"{clip_id}.mp4")
        real = probe_video(finished_run / "gt" / identity / f"{clip_id}.mp4")
        assert (info.width, info.height, info.num_frames) == (real.width, real.height, real.num_frames)
        from metrics.io.video import read_video_audio

        assert len(read_video_audio(finished_run / "copy" / identity / f"{clip_id}.mp4", 16000)) > 16000


def test_resume_after_a_crash_mid_method(corpus, tmp_path):
    out = tmp_path / "run"
    calls: list[str] = []
    clips = sorted(f"{r['identity']}/{r['clip_id']}" for r in map(json.loads, (corpus / "manifest.jsonl").read_text().splitlines())
                   if r["split"] == "test")
    crashing = {"copy": lambda: CopyMethod(crash_on=clips[1], calls=calls)}
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(settings(corpus, out, custom=crashing))
    identity, clip_id = clips[0].split("/")
    first = out / "copy" / identity / f"{clip_id}.mp4"
    assert first.is_file()
    before = (first.stat().st_ino, first.stat().st_mtime_ns)
    leftovers = [p.name for p in (out / "copy").rglob("*") if p.is_file() and p != first]
    assert leftovers == []                      # no half-written video of the crashed clip
    calls.clear()
    working = {"copy": lambda: CopyMethod(calls=calls)}
    results = run_benchmark(settings(corpus, out, custom=working))
    assert calls == clips[1:]                   # only the missing clips were generated
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == before
    assert set(results["methods"]["copy"]["generation"]) == set(clips)
    with pytest.raises(RunMismatchError, match="seed"):
        run_benchmark(settings(corpus, out, custom=working, seed=1))


def test_same_seed_same_results(corpus, finished_run, tmp_path):
    again = run_benchmark(settings(corpus, tmp_path / "again", custom={"copy": CopyMethod}))
    first = json.loads((finished_run / "results.json").read_text())
    for method in first["methods"]:
        # (compared as JSON text: the per-identity intervals of one clip are NaN, and NaN != NaN)
        assert json.dumps(again["methods"][method]["results"]) == json.dumps(first["methods"][method]["results"])


# -- regression check ---------------------------------------------------------------------------------


def test_check_passes_then_catches_a_moved_number_and_a_missing_row(finished_run, tmp_path):
    baseline = update_baseline(finished_run, tmp_path / "baseline")
    assert {p.name for p in baseline.iterdir()} == {"metrics.csv", "report.md", "tolerances.yaml"}
    failures, _ = check_run(finished_run, baseline)
    assert failures == []
    table = (baseline / "metrics.csv").read_text().splitlines()
    header, rows = table[0], table[1:]
    columns = header.split(",")
    moved = []
    for row in rows:
        cells = row.split(",")
        if cells[0] == "static" and cells[3] == "all" and cells[4] == "FGD":
            cells[columns.index("value")] = str(float(cells[columns.index("value")]) * 1.5)
        moved.append(",".join(cells))
    ghost = rows[0].split(",")
    ghost[0] = "ghost"
    ghost[3] = "all"
    moved.append(",".join(ghost))
    (baseline / "metrics.csv").write_text("\n".join([header] + moved) + "\n")
    failures, _ = check_run(finished_run, baseline)
    text = [str(f) for f in failures]
    assert any(t.startswith("static/all/FGD: baseline") and "moved" in t and "tolerance" in t for t in text)
    assert any(t.startswith("ghost/all/") and "missing from the run" in t for t in text)
    assert len(failures) == 2
    assert bench_main(["check", "--baseline", str(baseline), "--run", str(finished_run)]) == 1


def test_check_fails_on_a_protocol_change_and_a_failed_control_check():
    row = {"method": "m", "scope": "all", "metric": "FGD", "value": "1.0", "protocol": "p (1.0, abc)"}
    table = {("m", "all", "FGD"): row}
    failures, _ = compare(table, table, {"protocol": "p (1.1, def)"})
    assert failures and "protocol" in str(failures[0])
    failures, _ = compare(table, table, {}, [{"metric": "BAS", "expected": "shuffled < gt", "low": 0.6,
                                              "high": 0.5, "holds": False}])
    assert "control check BAS" in str(failures[0])
    within, _ = compare({("m", "all", "FGD"): {**row, "value": "1.05"}}, table, {"metrics": {"FGD": {"rel": 0.1}}})
    assert within == []


def test_markdown_table_bolds_the_best_method_in_each_direction():
    from bench.report import markdown_table

    def method(label, kind, **values):
        return {"kind": kind, "label": label, "results": {"all": {
            k: {"value": v, "ci_low": v - 1, "ci_high": v + 1, "n_fake_clips": 4} for k, v in values.items()}}}

    results = {"methods": {"a": method("A", "model", FGD=2.0, BAS=0.4), "b": method("B", "model", FGD=3.0, BAS=0.6),
                           "gt": method("GT", "control", FGD=0.0, BAS=0.9)}}
    lines = markdown_table(results).splitlines()
    assert lines[0].startswith("| method | FGD ↓ | BAS ↑ |")
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[2:]}
    assert cells["A"] == ["**2.000** [1.000, 3.000]", "0.4000 [-0.6000, 1.400]"]
    assert cells["B"] == ["3.000 [2.000, 4.000]", "**0.6000** [-0.4000, 1.600]"]
    assert "**" not in "".join(cells["GT *(control)*"])       # controls are never "best"


def test_control_checks_flag_a_wrong_order_and_skip_unscored_methods():
    def entry(v):
        return {"value": v, "ci_low": v, "ci_high": v}

    def method(kind, **values):
        return {"kind": kind, "label": kind, "results": {"all": {k: entry(v) for k, v in values.items()}}}

    results = {"methods": {"m": {"kind": "model", "label": "m", "results": {}},
                           "gt": method("control", FGD=0.0, Diversity=5.0, BAS=0.5),
                           "static": method("control", FGD=9.0, Diversity=0.0, BAS=0.0),
                           "shuffled": method("control", FGD=0.0, Diversity=5.0, BAS=0.7)},
               "protocol": {}}
    checks = {(c["metric"], c["expected"]): c for c in control_checks(results)}
    assert checks[("BAS", "shuffled < gt")]["holds"] is False
    assert checks[("FGD", "gt < static")]["holds"] is True
    assert checks[("FGD", "gt <= m")]["holds"] is None
    # with fewer than 8 test clips the BAS ordering is reported, not gating; with 8 it fails the run
    assert not checks[("BAS", "shuffled < gt")]["gating"] and failed_checks(results) == []
    results["methods"]["gt"]["results"]["all"]["BAS"]["n_clips"] = 8
    results["control_checks"] = control_checks(results)
    assert [c["expected"] for c in failed_checks(results)] == ["shuffled < gt"]


# -- external methods ---------------------------------------------------------------------------------


def test_generated_folder_missing_and_corrupt_videos(corpus, finished_run, tmp_path):
    results = json.loads((finished_run / "results.json").read_text())
    *present, absent = results["run"]["test_clips"]
    folder = tmp_path / "official"
    for label in present:
        identity, clip_id = label.split("/")
        (folder / identity).mkdir(parents=True, exist_ok=True)
        (folder / identity / f"{clip_id}.mp4").write_bytes((finished_run / "copy" / identity / f"{clip_id}.mp4").read_bytes())
    with pytest.raises(ExternalVideoError, match=f"{absent.split('/')[1]}.mp4: missing"):
        run_benchmark(settings(corpus, tmp_path / "r1", methods=(), generated={"official": folder}))
    results = run_benchmark(settings(corpus, tmp_path / "r2", methods=(), generated={"official": folder},
                                     skip_missing=True))
    assert list(results["methods"]["official"]["skipped"]) == [absent]
    assert "FGD" in results["methods"]["official"]["results"]["all"]
    write_report(tmp_path / "r2", plots=False)
    assert "⚠ 1 clip(s) missing" in (tmp_path / "r2" / "report.md").read_text()
    corrupt = folder / absent.split("/")[0] / f"{absent.split('/')[1]}.mp4"
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(ExternalVideoError, match="unreadable video"):
        check_video(corrupt)


FAKE_TOOL = textwrap.dedent("""
    import sys
    import numpy as np
    from PIL import Image
    from metrics.io.video import write_video
    reference, audio, out, frames, fps = sys.argv[1:6]
    if "fail" in out:
        sys.exit(3)
    image = np.asarray(Image.open(reference).convert("RGB"))
    write_video(out, np.repeat(image[None], int(frames), axis=0), float(fps))
""")


def test_command_template_adapter_runs_a_fake_tool(corpus, tmp_path):
    tool = tmp_path / "tool.py"
    tool.write_text(FAKE_TOOL)
    methods_file = tmp_path / "methods.yaml"
    methods_file.write_text(f"methods:\n  official:\n    label: Official tool\n    command: {sys.executable} {tool} "
                            "{reference} {audio} {out} {num_frames} {fps}\n")
    results = run_benchmark(settings(corpus, tmp_path / "r", methods=("official",), methods_file=methods_file))
    assert results["methods"]["official"]["label"] == "Official tool"
    for label in results["run"]["test_clips"]:
        identity, clip_id = label.split("/")
        made, real = tmp_path / "r" / "official" / identity / f"{clip_id}.mp4", corpus / identity / f"{clip_id}.mp4"
        assert probe_video(made).num_frames == probe_video(real).num_frames
        assert (tmp_path / "r" / "work" / "official" / "inputs" / identity / f"{clip_id}.png").is_file()
    # a failing command: a clear error naming the clip and the exit code; nothing left as finished
    failing = tmp_path / "failing.yaml"
    failing.write_text(f"methods:\n  fail:\n    command: {sys.executable} {tool} {{reference}} {{audio}} "
                       "{out} {num_frames} {fps}\n")
    with pytest.raises(ExternalVideoError, match=r"fail on .*exited with 3"):
        run_benchmark(settings(corpus, tmp_path / "r3", methods=("fail",), methods_file=failing))
    assert not list((tmp_path / "r3").glob("fail/*/*.mp4"))


def test_methods_file_errors_and_quoting(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("methods:\n  x:\n    command: run {reference} {output}\n")
    with pytest.raises(ValueError, match=r"unknown placeholder.*\{output\}"):
        parse_methods_file(path)
    path.write_text("methods:\n  x:\n    command: run {reference}\n")
    with pytest.raises(ValueError, match=r"must write \{out\}"):
        parse_methods_file(path)
    path.write_text("methods:\n  x:\n    command: run {out}\n    gpu: 1\n")
    with pytest.raises(ValueError, match="unknown key.*gpu"):
        parse_methods_file(path)
    argv = format_command("tool --in {reference} --out {out}", {"reference": "/a b/c.png", "out": "/o;rm -rf x.mp4"})
    assert argv == ["tool", "--in", "/a b/c.png", "--out", "/o;rm -rf x.mp4"]


def test_shuffled_bas_is_the_mean_over_every_other_clips_audio(finished_run):
    from metrics.io.audio import load_audio
    from metrics.beats import BAS
    from metrics.pose.toy import ToyMarkerPose
    from metrics.protocol import Protocol

    results = json.loads((finished_run / "results.json").read_text())
    labels = results["run"]["test_clips"]
    scorer, pose = BAS(Protocol.from_dict(results["protocol"])), ToyMarkerPose()
    audio = {label: load_audio((finished_run / "gt" / label).with_suffix(".wav"), 16000) for label in labels}
    expected = []
    for label in labels:
        with VideoReader((finished_run / "gt" / label).with_suffix(".mp4")) as reader:
            keypoints = pose(reader.read(0, len(reader)))
        n = len(audio[label])
        scores = [scorer.score(keypoints, 25.0, np.resize(audio[other], n), 16000)
                  for other in labels if other != label]
        expected.append(np.mean(scores))
    shuffled = results["methods"]["shuffled"]["results"]["all"]["BAS"]
    assert shuffled["value"] == pytest.approx(np.mean(expected), rel=1e-9)
    assert shuffled["n_clips"] == 4


def test_diversity_is_within_identity(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    gt = results["methods"]["gt"]["results"]
    per_identity = [gt[s]["Diversity"]["value"] for s in gt if s.startswith("identity:")]
    assert gt["all"]["Diversity"]["value"] == pytest.approx(np.mean(per_identity))
    assert not math.isnan(gt["all"]["Diversity"]["value"])


def test_each_imac_variant_is_its_config_switches(corpus, tmp_path):
    from bench.methods.base import BenchContext
    from bench.methods.imac_method import IMACMethod, IMACOptions

    context = BenchContext(data_root=corpus, work_dir=tmp_path / "work", seed=3, identities=("ines",),
                           shared_vae=lambda: tmp_path / "vae", progress=False)
    options = IMACOptions.from_dict({"overrides": ["stage2.steps=7"]})
    configs = {name: IMACMethod(name).config(context, options) for name in
               ("imac", "imac-no-ref", "imac-no-motion", "imac-no-stage1", "imac-no-slowfast")}
    base = configs["imac"]
    assert (base.data.root, base.train.output, base.train.seed) == (str(corpus), str(tmp_path / "work"), 3)
    assert base.video.vae == str(tmp_path / "vae") and base.data.identities == ["ines"]
    assert base.stage2.steps == 7 and base.stage2.init_from == str(tmp_path / "work" / "stage1" / "model")
    assert base.video.reference_encoder and base.motion.enabled and base.stage1.motion_frames == 80
    assert configs["imac-no-ref"].video.reference_encoder is False
    assert configs["imac-no-motion"].motion.enabled is False and configs["imac-no-motion"].stage2.init_from is None
    assert configs["imac-no-stage1"].stage2.init_from is None and configs["imac-no-stage1"].motion.enabled
    assert (configs["imac-no-slowfast"].stage1.motion_frames, configs["imac-no-slowfast"].stage2.motion_frames) == (16, 16)
    assert not IMACMethod("imac-no-stage1").trains_stage1 and IMACMethod("imac-no-slowfast").trains_stage1
