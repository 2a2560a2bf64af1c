"""The metrics on folders of videos: end to end on a tiny toy corpus, the cache, and bad inputs."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.__main__ import main as metrics_main
from metrics.evaluate import ClipError, evaluate, write_result
from metrics.inputs import InputMismatchError
from metrics.results import SCHEMA_VERSION, read_result
from metrics.fgd_training import train_fgd_autoencoder
from metrics.dataset import FolderError, find_clips
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol
from metrics.sanity import build_controls, check_orderings, format_sanity, run_sanity
from metrics.skeleton_ae import load_autoencoder
from metrics.io.video import read_video, write_video
from tests.feature_stand_ins import MeanColourFeatures


class CountingExtractor(ToyMarkerPose):
    calls = 0

    def __call__(self, frames):
        CountingExtractor.calls += 1
        return super().__call__(frames)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    data = root / "toy"
    generate_toy_corpus(data, ToyCorpusConfig(seed=1, identities=2, clips=4, test_clips=2, size=64), progress=False)
    ae = root / "ae"
    train_fgd_autoencoder(data, ae, Protocol(), ToyMarkerPose(), keypoints="dataset", steps=60, latent=8, hidden=32)
    copies = root / "copies"
    for clip in find_clips(data, split="test"):
        target = copies / clip.identity / f"{clip.clip_id}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.video, target)
    return {"data": data, "ae": ae, "copies": copies, "root": root}


def run(corpus, fake, tmp_path, **options):
    options.setdefault("i3d", MeanColourFeatures())
    return evaluate(corpus["data"], fake, autoencoder=corpus["ae"], extractor=ToyMarkerPose(),
                    cache_dir=tmp_path / "cache", **options)


def test_identical_videos_score_as_real(corpus, tmp_path):
    result = run(corpus, corpus["copies"], tmp_path)
    table = result.scores["all"]
    assert table["fgd"].value == pytest.approx(0.0, abs=1e-6)
    assert table["fvd"].value == pytest.approx(0.0, abs=1e-9)
    # The copies have no wav; under bas_audio "real" (the default) each is scored with its real clip's
    # speech, read as the real side reads it: the same video gives the real side's BAS, clip by clip.
    assert table["bas"].value == pytest.approx(result.reference["all"]["bas"].value, abs=1e-12)
    assert table["div"].value > 0
    assert set(result.scores) == {"all", "identity:ines", "identity:omar"}
    assert result.protocol == Protocol().to_dict()
    assert table["fgd"].counts["n_real_clips"] == table["fgd"].counts["n_fake_clips"] == 4
    assert result.inputs.pairing == {"real": 4, "generated": 4, "paired": 4, "real_unpaired": 0,
                                     "generated_unpaired": 0}
    # Diversity is one-sided: its counts are of the side scored, not "fake" for the real videos' own value
    fgd = table["fgd"].counts
    assert table["div"].counts == {"n_clips": 4, "n_windows": fgd["n_fake_windows"]}
    assert result.reference["all"]["div"].counts == {"n_clips": 4, "n_windows": fgd["n_real_windows"]}


def test_bas_of_a_copy_read_from_its_own_track_differs_from_the_real_side(corpus, tmp_path):
    """bas_audio "generated" scores the copies against their mp4's AAC track: the codec moves the onsets,
    so identical videos no longer score as real (the bias the default avoids); a generated clip with no
    real clip of its identity/clip_id is scored with its own sound under either setting, and says so."""
    own = run(corpus, corpus["copies"], tmp_path, metrics=("bas",), protocol=Protocol(bas_audio="generated"))
    assert own.scores["all"]["bas"].value != pytest.approx(own.reference["all"]["bas"].value, abs=1e-3)
    alone = tmp_path / "alone"
    first = sorted(corpus["copies"].glob("*/*.mp4"))[0]
    (alone / first.parent.name).mkdir(parents=True)
    shutil.copyfile(first, alone / first.parent.name / "unpaired_clip.mp4")
    result = run(corpus, alone, tmp_path, metrics=("bas",), allow=["clips"])
    assert np.isfinite(result.scores["all"]["bas"].value)
    assert any("bas_audio" in line and "unpaired_clip" in line for line in result.provenance["bas"].conversions)


def test_every_metric_carries_its_provenance_card(corpus, tmp_path):
    result = run(corpus, corpus["copies"], tmp_path)
    cards = result.provenance
    assert set(cards) == {"fgd", "div", "bas", "fvd"}
    ae_hash = load_autoencoder(corpus["ae"])[1]["checkpoint_hash"]
    assert cards["fgd"].weights_hash == ae_hash and cards["div"].weights_hash == ae_hash
    assert cards["fgd"].preset == cards["fvd"].preset == "imac-bench"
    assert (cards["fgd"].n_real, cards["fgd"].n_fake, cards["fgd"].frames_per_clip) == (4, 4, 32)
    assert cards["fgd"].covariance.startswith("unbiased") and "eigvalsh" in cards["fgd"].sqrt_method
    assert (cards["fvd"].label, cards["fvd"].weights, cards["fvd"].pretrained) == ("FVD*", "test-mean-colour", False)
    assert cards["fvd"].frames_per_clip == 16 and cards["fvd"].input
    assert cards["bas"].n_real is None and cards["bas"].n_fake == 4
    assert "numpy" in cards["bas"].packages and cards["bas"].pose_extractor.startswith("toy")
    assert cards["bas"].conversions == cards["fvd"].conversions == ()     # both sides alike: nothing converted


def test_static_videos_are_worse_and_results_are_written(corpus, tmp_path):
    static = tmp_path / "static"
    for clip in find_clips(corpus["copies"], split=None):
        frames = read_video(clip.video)
        write_video(static / clip.identity / f"{clip.clip_id}.mp4", np.repeat(frames[:1], len(frames), 0), 25)
        shutil.copyfile(corpus["data"] / clip.identity / f"{clip.clip_id}.wav",
                        static / clip.identity / f"{clip.clip_id}.wav")
    result = run(corpus, static, tmp_path)
    table = result.scores["all"]
    assert table["fgd"].value > 1.0
    assert table["bas"].value < result.reference["all"]["bas"].value
    json_path, csv_path = write_result(result, tmp_path / "out" / "static.json")
    saved = json.loads(json_path.read_text())
    assert (saved["schema"], saved["schema_version"]) == ("metrics-evaluation", SCHEMA_VERSION)
    assert saved["protocol_label"] == Protocol().label and saved["labels"]["fvd"] == "FVD*"
    assert set(saved["scores"]["all"]) == {"fgd", "div", "bas", "fvd"}
    assert read_result(json_path).to_dict() == json.loads(json.dumps(result.to_dict()))
    # the bytes scored, file by file (hashlib here): the same folder with replaced videos is told apart
    for side, folder, audio in (("fake", static, True), ("real", corpus["data"], True)):
        files = saved[side]["files"]
        assert len(files) == 4 and saved[side]["content_digest"]
        for label, hashes in files.items():
            identity, clip_id = label.split("/")
            video = next((folder / identity).glob(f"{clip_id}.mp4"))
            assert hashes["video"] == hashlib.sha256(video.read_bytes()).hexdigest()
            assert hashes["audio"] == hashlib.sha256(video.with_suffix(".wav").read_bytes()).hexdigest()
    copies = run(corpus, corpus["copies"], tmp_path).fake
    assert all(set(hashes) == {"video"} for hashes in copies.files.values())      # no wav beside the copies
    assert copies.content_digest != result.fake.content_digest and result.real.content_digest
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("side,scope,metric,label,value,ci_low,ci_high")
    assert any(line.startswith("generated,identity:ines,fgd,FGD,") for line in lines)
    assert any(line.startswith("real,all,bas,BAS,") for line in lines)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"results": {"all": {"FVD*": {"value": 1.0}}}}))
    with pytest.raises(ValueError, match="no schema field.*compute it again"):
        read_result(old)


def test_keypoints_are_cached_per_video_content(corpus, tmp_path):
    CountingExtractor.calls = 0
    options = dict(autoencoder=corpus["ae"], metrics=("fgd",), cache_dir=tmp_path / "cache")
    evaluate(corpus["data"], corpus["copies"], extractor=CountingExtractor(), **options)
    first = CountingExtractor.calls
    assert first > 0
    evaluate(corpus["data"], corpus["copies"], extractor=CountingExtractor(), **options)
    assert CountingExtractor.calls == first  # nothing extracted the second time


class CountingColourFeatures(MeanColourFeatures):
    calls = 0

    def __call__(self, videos):
        CountingColourFeatures.calls += 1
        return super().__call__(videos)


def test_cached_i3d_statistics_outlive_a_change_to_another_metrics_fields(corpus, tmp_path):
    """The I3D cache is keyed by the FVD fields: rescoring under another BAS setting reuses it (the
    same FVD); a change to an FVD field computes the statistics again."""
    options = dict(autoencoder=corpus["ae"], metrics=("bas", "fvd"), extractor=ToyMarkerPose(),
                   i3d=CountingColourFeatures(), cache_dir=tmp_path / "cache")
    CountingColourFeatures.calls = 0
    first = evaluate(corpus["data"], corpus["copies"], protocol=Protocol(), **options).scores["all"]
    computed = CountingColourFeatures.calls
    assert computed > 0
    other_bas = evaluate(corpus["data"], corpus["copies"], protocol=Protocol(bas_sigma=0.1), **options).scores["all"]
    assert CountingColourFeatures.calls == computed
    assert other_bas["fvd"].value == pytest.approx(first["fvd"].value, rel=1e-9, abs=1e-12)
    assert other_bas["bas"].value != pytest.approx(first["bas"].value, abs=1e-6)
    evaluate(corpus["data"], corpus["copies"], protocol=Protocol(fvd_clips="first"), **options)
    assert CountingColourFeatures.calls > computed


def test_damaged_cache_entries_are_computed_again(corpus, tmp_path, caplog):
    """Cached keypoints of the wrong shape or frame count or with NaN, and I3D statistics of foreign
    arrays, are warned about and recomputed: the scores equal those of a run without a cache."""
    from metrics.io.files import save_npz_atomic

    options = dict(autoencoder=corpus["ae"], metrics=("fgd", "fvd"), extractor=ToyMarkerPose(),
                   i3d=MeanColourFeatures())
    fresh = evaluate(corpus["data"], corpus["copies"], cache_dir=None, **options).scores["all"]
    cache = tmp_path / "cache"
    evaluate(corpus["data"], corpus["copies"], cache_dir=cache, **options)
    entries = {kind: sorted(cache.glob(f"{kind}__*/*.npz")) for kind in ("keypoints", "i3d")}
    assert entries["keypoints"] and entries["i3d"]
    for k, path in enumerate(entries["keypoints"]):    # a foreign layout, too few frames, NaN: in turn
        with np.load(path) as entry:
            stored = entry["keypoints"]
        nan = stored.copy()
        nan[3, :, 0] = np.nan
        damaged = (np.zeros((5, 17, 3), np.float32), stored[:40], nan)[k % 3]
        save_npz_atomic(path, keypoints=damaged, fps=np.array(25.0))
    for path in entries["i3d"]:
        save_npz_atomic(path, count=np.array(3), total=np.zeros(12), rows=np.zeros((2, 12)))
    CountingExtractor.calls = 0
    with caplog.at_level("WARNING"):
        again = evaluate(corpus["data"], corpus["copies"], cache_dir=cache,
                         **{**options, "extractor": CountingExtractor()}).scores["all"]
    assert CountingExtractor.calls > 0
    assert "cached keypoints ignored" in caplog.text and "cached I3D statistics ignored" in caplog.text
    for metric in ("fgd", "fvd"):
        assert again[metric].value == pytest.approx(fresh[metric].value, rel=1e-9, abs=1e-12)


def test_cli_compute_writes_json_and_csv(corpus, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = metrics_main(["compute", "--real", str(corpus["data"]), "--fake", str(corpus["copies"]),
                         "--metrics", "fgd,div,bas", "--fgd-ae", str(corpus["ae"]), "--out", str(out),
                         "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "protocol: imac-bench" in printed and "FGD" in printed
    saved = json.loads(out.read_text())
    assert f"generated content: 4 clip(s) from {corpus['copies']}, SHA-256 of their files " \
           f"{saved['fake']['content_digest']}" in printed
    assert out.exists() and out.with_suffix(".csv").exists()
    # a second run into the same file is refused before any work, unless --overwrite: the first result stays
    again = ["compute", "--real", str(corpus["data"]), "--fake", str(corpus["copies"]), "--metrics", "bas",
             "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"]
    assert metrics_main(again) == 2
    assert f"{out}: a result is there already; give another --out, or --overwrite" in capsys.readouterr().err
    assert json.loads(out.read_text())["metrics"] == ["fgd", "div", "bas"]
    assert metrics_main([*again, "--overwrite"]) == 0
    assert json.loads(out.read_text())["metrics"] == ["bas"]


class NoFeatures(MeanColourFeatures):
    def __call__(self, videos):
        raise AssertionError("a refused comparison must stop before any video is decoded")


def test_generated_clips_covering_part_of_the_real_ones_are_refused_unless_allowed(corpus, tmp_path, capsys):
    """Generated videos for 2 of the 4 test clips, plus one of a train clip: refused before any decoding,
    naming the clips; allowed, a warning comes before the work and the counts are in the result."""
    partial = tmp_path / "partial"
    for label in ("ines/ines_002", "omar/omar_003", "ines/ines_000"):      # ines_000 is a train clip
        (partial / label).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus["data"] / f"{label}.mp4", partial / f"{label}.mp4")
    with pytest.raises(InputMismatchError, match=r"clips differs \(2 of 4 real clip\(s\) have no generated clip: "
                       r"ines/ines_003, omar/omar_002; 1 of 3 generated clip\(s\) have no real clip .*: ines/ines_000"):
        run(corpus, partial, tmp_path, metrics=("fvd",), i3d=NoFeatures())
    command = ["compute", "--real", str(corpus["data"]), "--fake", str(partial), "--metrics", "bas",
               "--cache", str(tmp_path / "cache")]
    assert metrics_main(command + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ines/ines_003, omar/omar_002" in err and "--allow-mismatch clips" in err
    out = tmp_path / "partial.json"
    assert metrics_main(command + ["--allow-mismatch", "clips", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    warning = [n for n, line in enumerate(printed.err.splitlines()) if line.startswith("input clips (allowed")]
    progress = [n for n, line in enumerate(printed.err.splitlines()) if line.startswith("[1/")]
    assert warning and progress and warning[0] < progress[0]            # said before the work
    assert "2 of 4 real clip(s) have no generated clip" in printed.err and "input clips (allowed" in printed.out
    saved = json.loads(out.read_text())
    assert saved["inputs"]["pairing"] == {"real": 4, "generated": 3, "paired": 2, "real_unpaired": 2,
                                          "generated_unpaired": 1}
    assert any(line.startswith("clips (allowed") for line in saved["provenance"]["bas"]["conversions"])
    assert saved["scores"]["all"]["bas"]["counts"]["n_clips"] == 3


def test_corrupt_and_truncated_videos_are_named_or_skipped(corpus, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(corpus["copies"], bad)
    (bad / "ines" / "ines_002.mp4").write_bytes(b"this is not a video")
    data = (bad / "omar" / "omar_003.mp4").read_bytes()
    (bad / "omar" / "omar_003.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipError, match="ines_002"):
        run(corpus, bad, tmp_path, metrics=("fgd",))
    truncated_only = tmp_path / "truncated"
    (truncated_only / "omar").mkdir(parents=True)
    shutil.copyfile(bad / "omar" / "omar_003.mp4", truncated_only / "omar" / "omar_003.mp4")
    with pytest.raises(ClipError, match="omar_003"):  # FVD alone decodes too: the same check
        run(corpus, truncated_only, tmp_path, metrics=("fvd",), allow=["clips"])
    # skipping two of the four generated clips leaves their real clips unpaired: a subset, refused as such
    # (naming why they are missing) unless the subset is allowed
    with pytest.raises(InputMismatchError, match=r"2 of 4 real clip\(s\) have no generated clip: ines/ines_002, "
                                                 r"omar/omar_003.*\(skipped as unreadable: fake ines/ines_002: "):
        run(corpus, bad, tmp_path, metrics=("fgd",), on_error="skip")
    result = run(corpus, bad, tmp_path, metrics=("fgd",), on_error="skip", allow=["clips"])
    skipped = {s.clip for s in result.skipped}
    assert skipped == {"ines/ines_002", "omar/omar_003"}
    assert result.scores["all"]["fgd"].counts["n_fake_clips"] == 2
    assert result.inputs.pairing == {"real": 4, "generated": 2, "paired": 2, "real_unpaired": 2,
                                     "generated_unpaired": 0}
    # a clip that passes the header check but fails while its frames are read (10 frames, its length allowed
    # to differ: shorter than one FGD window) is found later: the same rule
    decoded_bad = tmp_path / "decoded_bad"
    shutil.copytree(corpus["copies"], decoded_bad)
    write_video(decoded_bad / "omar" / "omar_003.mp4", read_video(corpus["copies"] / "omar" / "omar_003.mp4")[:10], 25)
    with pytest.raises(InputMismatchError, match=r"clips: 1 clip\(s\) left without a partner by clips that could not "
                                                 r"be scored \(fake omar/omar_003: .*shorter than one"):
        run(corpus, decoded_bad, tmp_path, metrics=("fgd",), on_error="skip", allow=["duration"])
    result = run(corpus, decoded_bad, tmp_path, metrics=("fgd",), on_error="skip", allow=["duration", "clips"])
    assert [s.clip for s in result.skipped] == ["omar/omar_003"]
    assert result.inputs.pairing == {"real": 4, "generated": 3, "paired": 3, "real_unpaired": 1,
                                     "generated_unpaired": 0}
    assert any(line.startswith("clips (allowed, fgd): 3 paired clip(s) scored, 1 real and 0 generated unpaired")
               for line in result.provenance["fgd"].conversions)


def test_short_videos_empty_folders_and_resolution_mismatch(corpus, tmp_path):
    short = tmp_path / "short"
    clip = find_clips(corpus["copies"], split=None)[0]
    write_video(short / clip.identity / f"{clip.clip_id}.mp4", read_video(clip.video)[:10], 25)
    with pytest.raises(InputMismatchError, match=r"duration differs.*ines/ines_002 \(10 frames"):
        run(corpus, short, tmp_path, metrics=("fgd",))
    with pytest.raises(ClipError, match="shorter than one 32-frame window"):
        run(corpus, short, tmp_path, metrics=("fgd",), allow=["duration", "clips"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="no videos"):
        run(corpus, tmp_path / "empty", tmp_path)
    big = tmp_path / "big"
    frames = read_video(clip.video)
    write_video(big / clip.identity / f"{clip.clip_id}.mp4", np.repeat(np.repeat(frames, 2, 1), 2, 2), 25)
    with pytest.raises(InputMismatchError, match=r"frame_size differs.*128x128.*ines/ines_002"):
        run(corpus, big, tmp_path, metrics=("fvd",))
    result = run(corpus, big, tmp_path, metrics=("fvd",), allow=["clips"], allow_resolution_mismatch=True)
    assert result.scores["all"]["fvd"].counts["n_fake_clips"] == 1
    assert [(f.property, f.action) for f in result.inputs.findings] == [("clips", "allowed"), ("frame_size", "allowed")]
    assert "frame_size (allowed" in result.provenance["fvd"].conversions[1]


def test_a_smaller_generated_size_is_converted_for_drift_and_refused_for_psnr_unless_allowed(corpus, tmp_path):
    """Was: Drift and PSNR failed after decoding ('the reference image is (64, 64, 3), the frames (32, 32, 3)'),
    and --allow-mismatch frame_size did not help. Drift's expected value: the least-squares slope (numpy
    polyfit) of the mean |frame - real first frame shrunk by 2x2 block means| per frame, frames per second 25."""
    clip = find_clips(corpus["data"], split="test")[0]
    frames = read_video(clip.video)
    small = tmp_path / "small"
    halved = frames.reshape(len(frames), 32, 2, 32, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    write_video(small / clip.identity / f"{clip.clip_id}.mp4", halved, 25)
    result = run(corpus, small, tmp_path, metrics=("drift",), allow=["clips"])
    assert ("frame_size", "converted", ("drift",)) in [(f.property, f.action, f.metrics) for f in result.inputs.findings]
    generated = read_video(small / clip.identity / f"{clip.clip_id}.mp4").astype(np.float64)
    reference = frames[0].reshape(32, 2, 32, 2, 3).astype(np.float64).mean(axis=(1, 3))
    distances = np.abs(generated - reference).mean(axis=(1, 2, 3))
    expected = np.polyfit(np.arange(len(distances)) / 25.0, distances, 1)[0]
    # cv2's area resize rounds each block mean to uint8: at most 0.5 grey levels from the exact mean
    assert result.scores["all"]["drift"].value == pytest.approx(expected, abs=0.05)
    with pytest.raises(InputMismatchError, match=r"frame_size differs.*32x32.*PSNR, SSIM and LPIPS compare pixel to "):
        run(corpus, small, tmp_path, metrics=("psnr",), allow=["clips"])
    allowed = run(corpus, small, tmp_path, metrics=("psnr",), allow=["clips", "frame_size"])
    assert np.isfinite(allowed.scores["all"]["psnr"].value)
    assert ("frame_size", "allowed") in [(f.property, f.action) for f in allowed.inputs.findings]


def test_nan_keypoints_are_an_error_naming_the_file(corpus, tmp_path):
    class NanExtractor(ToyMarkerPose):
        extractor_id = "nan-extractor"

        def __call__(self, frames):
            out = super().__call__(frames)
            out[0, 5, 0] = np.nan
            return out

    with pytest.raises(ClipError, match=r"ines_002\.mp4.*NaN"):
        evaluate(corpus["data"], corpus["copies"], metrics=("fgd",), autoencoder=corpus["ae"],
                 extractor=NanExtractor(), cache_dir=None)


def test_fgd_and_div_need_an_autoencoder_and_fvd_needs_real_videos(corpus):
    with pytest.raises(ValueError, match="autoencoder"):
        evaluate(corpus["data"], corpus["copies"], metrics=("fgd",), cache_dir=None)
    with pytest.raises(ValueError, match="real_dir"):
        evaluate(None, corpus["copies"], metrics=("fvd",), cache_dir=None)


def test_autoencoder_round_trip_and_tamper_check(corpus, tmp_path):
    model, meta = load_autoencoder(corpus["ae"])
    assert meta["training"]["training_windows"] > 0 and meta["model"]["latent"] == 8
    x = torch.randn(3, 32, len(Protocol().skeleton_points), 2)
    assert model.encode(x).shape == (3, 8)
    copy = tmp_path / "ae"
    shutil.copytree(corpus["ae"], copy)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="modified"):
        load_autoencoder(copy)
    with pytest.raises(FileNotFoundError, match="train-fgd-ae"):
        load_autoencoder(tmp_path)


def test_sanity_controls_and_checks(corpus, tmp_path):
    folders = build_controls(corpus["data"], tmp_path / "controls")
    reference = find_clips(folders["reference"], split=None)
    static = find_clips(folders["static"], split=None)
    assert len(reference) == len(static) == 4  # 8 clips split in halves
    frames = read_video(static[0].video)
    difference = np.abs(frames.astype(int) - frames[:1])   # one frame repeated, up to H.264 noise
    assert difference.mean() < 0.5 and np.percentile(difference, 99.9) <= 4
    good = {"real (other half)": {"FGD": {"value": 1.0}, "FVD*": {"value": 1.0}, "Diversity": {"value": 5.0}, "BAS": {"value": 0.6}},
            "static": {"FGD": {"value": 9.0}, "FVD*": {"value": 9.0}, "Diversity": {"value": 1.0}, "BAS": {"value": 0.0}},
            "shuffled audio": {"FGD": {"value": 1.0}, "FVD*": {"value": 1.0}, "Diversity": {"value": 5.0}, "BAS": {"value": 0.4}}}
    assert all(c["holds"] for c in check_orderings(good))
    good["shuffled audio"]["BAS"]["value"] = 0.7
    failed = [c for c in check_orderings(good) if not c["holds"]]
    assert [c["expected"] for c in failed] == ["shuffled audio < real (other half)"]


def test_the_sanity_report_gives_intervals_counts_and_names_the_failing_checks():
    """Before, sanity.md gave bare values and a bare "All checks pass: NO": no interval, no N, and which
    check failed had to be found in the table."""
    def entry(value, low, high, real=4, fake=4):
        return {"value": value, "ci_low": low, "ci_high": high, "counts": {"n_real_clips": real, "n_fake_clips": fake}}

    tables = {"real (other half)": {"FGD": entry(50.0, 30.0, 80.0), "BAS": entry(0.6, 0.5, 0.7)},
              "static": {"FGD": entry(370.0, 300.0, 420.0), "BAS": entry(0.0, 0.0, 0.0)},
              "shuffled audio": {"FGD": entry(50.0, 30.0, 80.0), "BAS": entry(0.65, 0.55, 0.75)}}
    checks = check_orderings(tables, ("fgd", "bas"))
    report = {"protocol_label": "p", "data": "d", "tables": tables, "checks": checks, "passed": False,
              "skeleton_autoencoder": None, "i3d": None, "pose_extractor": "toy"}
    lines = format_sanity(report).splitlines()
    assert lines[3].endswith("from half B. N: reference 4 clips; each candidate 4 clips.")
    assert "| static | 370 [300, 420] | 0 [0, 0] |" in lines
    assert "| FGD: real (other half) < static | 50 vs 370 | yes | apart |" in lines
    assert "| BAS: shuffled audio < real (other half) | 0.65 vs 0.6 | **NO** | overlap |" in lines
    assert "| BAS: static < real (other half) | 0 vs 0.6 | yes | apart |" in lines
    assert lines[-1] == "All checks pass: NO: 1 of 3 fail (BAS: shuffled audio < real (other half))."
    tables["shuffled audio"]["BAS"] = entry(0.4, 0.3, 0.62)
    report["checks"] = check_orderings(tables, ("fgd", "bas"))
    lines = format_sanity(report).splitlines()
    assert "| BAS: shuffled audio < real (other half) | 0.4 vs 0.6 | yes | overlap |" in lines
    assert lines[-1] == "All checks pass: yes, 3 of 3."


def test_sanity_report_without_fgd_or_diversity_names_no_autoencoder(corpus, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        report = run_sanity(corpus["data"], tmp_path / "sanity", metrics=("bas",))
    # its controls are the other half's clips by design: no "real clip(s) have no generated clip" warning
    assert "no generated clip" not in caplog.text and "input clips" not in caplog.text
    assert report["skeleton_autoencoder"] is None
    assert not (tmp_path / "sanity" / "fgd_autoencoder").exists()      # BAS needs no autoencoder: none trained
    text = format_sanity(report)
    assert "skeleton autoencoder" not in text and "| BAS |" in text


def test_keypoints_extracted_beside_i3d_equal_a_direct_extraction_in_frame_order(corpus):
    """``Evaluator.decode`` runs the pose extractor on a second thread while I3D takes the frames: the
    keypoints must be those of the whole video extracted at once, in frame order, over several
    64-frame chunks, and an extractor's error must still reach the caller."""
    import threading

    from metrics.evaluate import Evaluator

    clip = find_clips(corpus["data"], split="test")[0]
    frames = read_video(clip.video)
    assert len(frames) > 64                                   # several chunks
    expected = ToyMarkerPose()(frames)                         # one call on every frame

    threads = []

    class Recording(ToyMarkerPose):
        def __call__(self, chunk):
            threads.append(threading.current_thread().name)
            return super().__call__(chunk)

    class MainThreadColour(MeanColourFeatures):
        def __call__(self, videos):
            assert threading.current_thread() is threading.main_thread()
            return super().__call__(videos)

    evaluator = Evaluator(("fgd", "fvd"), Protocol(), extractor=Recording(), autoencoder=load_autoencoder(corpus["ae"]),
                          i3d=MainThreadColour())
    keypoints, _, _, stats, _ = evaluator.decode(clip)
    np.testing.assert_array_equal(keypoints, expected)
    assert stats is not None and len(threads) == -(-len(frames) // 64)
    assert all(name != threading.main_thread().name for name in threads)
    # I3D on the first 16 frames only (it stops reading there), the frames kept: the keypoints still whole
    first = Evaluator(("fgd", "fvd"), Protocol(fvd_clips="first"), extractor=Recording(),
                      autoencoder=load_autoencoder(corpus["ae"]), i3d=MainThreadColour())
    keypoints, _, _, stats, kept = first.decode(clip, want_frames=True)
    np.testing.assert_array_equal(keypoints, expected)
    np.testing.assert_array_equal(kept, frames)
    assert stats is not None and stats.count == 1

    class Failing(ToyMarkerPose):
        def __call__(self, chunk):
            raise RuntimeError("the extractor broke")

    evaluator.extractor = Failing()
    with pytest.raises(RuntimeError, match="the extractor broke"):
        evaluator.decode(clip)


def test_a_first_run_and_a_cached_run_read_the_same_keypoints(corpus, tmp_path):
    """The cache holds float32 keypoints; an extractor giving float64 (finer than float32) must give the
    scorer and the FGD autoencoder's training the same numbers on a cold cache as on a warm one."""
    from metrics.evaluate import Evaluator
    from metrics.pose.extraction import keypoint_cache, video_keypoints

    class Fine(ToyMarkerPose):
        extractor_id = "fine-float64"

        def __call__(self, frames):
            return super().__call__(frames).astype(np.float64) + 1e-9

    clip = find_clips(corpus["data"], split="test")[0]
    evaluator = Evaluator(("bas",), Protocol(), extractor=Fine(), cache_dir=tmp_path / "a")
    cold, _ = evaluator.keypoints(clip)
    warm, _ = evaluator.keypoints(clip)
    assert cold.dtype == warm.dtype == np.float32
    np.testing.assert_array_equal(cold, warm)

    cache = keypoint_cache(tmp_path / "b", Fine.extractor_id, Protocol().version)
    cold, _ = video_keypoints(clip.video, Fine(), cache)
    warm, _ = video_keypoints(clip.video, Fine(), cache)
    assert cold.dtype == warm.dtype == np.float32
    np.testing.assert_array_equal(cold, warm)


def test_a_slow_extractor_beside_i3d_holds_at_most_three_chunks_of_frames(corpus, tmp_path, monkeypatch):
    """The extractor's thread may fall behind I3D (DWPose on a CPU is slower than the I3D): the decoder
    must wait for it rather than queue a long video's frames."""
    import threading
    import time as clock

    import metrics.evaluate as evaluate_module
    from metrics.evaluate import Evaluator

    clip = find_clips(corpus["data"], split="test")[0]
    frames = read_video(clip.video)
    long_video = tmp_path / "long" / "ines" / "long.mp4"
    long_video.parent.mkdir(parents=True)
    write_video(long_video, np.concatenate([frames] * 4), 25.0)      # several 64-frame chunks
    long_clip = find_clips(tmp_path / "long", split=None)[0]
    chunks = -(-4 * len(frames) // 64)
    assert chunks >= 6

    yielded, done, behind = [0], [0], []
    lock = threading.Lock()

    class CountingReader(evaluate_module.VideoReader):
        def iter_chunks(self, size):
            for chunk in super().iter_chunks(size):
                with lock:
                    yielded[0] += 1
                yield chunk

    class Slow(ToyMarkerPose):
        def __call__(self, chunk):
            with lock:
                behind.append(yielded[0] - done[0])    # chunks read and not yet extracted, this one included
            clock.sleep(0.2)
            out = super().__call__(chunk)
            with lock:
                done[0] += 1
            return out

    monkeypatch.setattr(evaluate_module, "VideoReader", CountingReader)
    evaluator = Evaluator(("bas", "fvd"), Protocol(), extractor=Slow(), i3d=MeanColourFeatures())
    keypoints, _, _, _, _ = evaluator.decode(long_clip)
    assert len(keypoints) == 4 * len(frames) and len(behind) == chunks
    # one chunk being extracted, one queued, one read and waiting to be queued (unbounded: 6 here)
    assert max(behind) <= 3

    class BrokenI3D(MeanColourFeatures):
        def __call__(self, videos):
            raise ValueError("the I3D broke")

    behind.clear()
    evaluator = Evaluator(("bas", "fvd"), Protocol(), extractor=Slow(), i3d=BrokenI3D())
    with pytest.raises(ValueError, match="the I3D broke"):     # raised, with the queued chunk dropped
        evaluator.decode(long_clip)
    assert len(behind) < chunks


@pytest.mark.parametrize("given, written", [("eval.json", "eval.json"), ("eval", "eval.json"),
                                            ("res.txt", "res.txt.json"), ("eval.v2", "eval.v2.json"),
                                            ("out.csv", "out.json")])      # (was out.csv.json and out.csv.csv)
def test_a_result_name_without_json_gets_it_added_not_its_ending_replaced(given, written):
    # --out res.txt wrote res.json (and res.csv), a file the user never named, perhaps another result
    from pathlib import Path

    from metrics.results import result_paths
    assert result_paths(f"runs/{given}") == (Path(f"runs/{written}"), Path(f"runs/{written[:-5]}.csv"))


def test_a_file_cut_short_with_its_header_at_the_front_is_named_truncated_and_skipped(corpus, tmp_path):
    """A faststart mp4 (the header first, as web tools write them) cut in half still opens: before, it was
    read as a shorter clip, refused as a length mismatch that --skip-bad did not skip, and scored on its
    surviving frames when the lengths were allowed to differ. Built here with PyAV and cut with bytes."""
    from tests.cut_files import write_faststart_cut

    cut = tmp_path / "cut"
    shutil.copytree(corpus["copies"], cut)
    source = cut / "omar" / "omar_003.mp4"
    frames = read_video(source)
    write_faststart_cut(source, frames)
    with pytest.raises(ClipError, match=rf"omar_003.mp4: truncated: its header lists {len(frames)} video frames and "
                                        r"the file holds \d+"):
        run(corpus, cut, tmp_path, metrics=("fgd",), allow=["duration"])
    result = run(corpus, cut, tmp_path, metrics=("fgd",), on_error="skip", allow=["clips"])
    assert [(s.clip, "truncated" in s.reason) for s in result.skipped] == [("omar/omar_003", True)]


def test_a_folder_of_videos_has_no_split_and_the_records_say_so(corpus, tmp_path):
    """--split was ignored for a folder of videos but recorded as applied (real.split "test"), and an FGD
    autoencoder trained on a folder (e.g. the generated clips themselves) was labelled as trained on "train"."""
    result = evaluate(corpus["copies"], corpus["copies"], ("bas",), extractor=ToyMarkerPose(), cache_dir=None,
                      split="train")
    assert result.real.split is None and result.real.clips == 4
    # BAS's card says where the speech came from: read from an AAC track it differs from the wav's (a new
    # user measured 0.7949 against 0.7682 for the same clips given as a folder of mp4s, and nothing said so)
    assert "speech of the real clips from their video sound tracks; generated clips scored with their real " \
           "clip's speech" in result.provenance["bas"].input
    dataset = run(corpus, corpus["copies"], tmp_path, metrics=("bas",))
    assert "speech of the real clips from their wav files" in dataset.provenance["bas"].input
    assert dataset.real.split == "test"                                                       # a dataset: its split
    train_fgd_autoencoder(corpus["copies"], tmp_path / "ae", Protocol(), ToyMarkerPose(), steps=2, latent=4, hidden=8)
    card = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert card["training"]["split"] == "all (a folder of videos)"


def test_the_real_videos_have_no_psnr_or_ssim_of_their_own(corpus, tmp_path):
    """Before: the real side's row gave PSNR 100 and SSIM 1, each real clip against itself, read as a reference
    value (and the benchmark's GT and noise-floor rows showed them too)."""
    result = run(corpus, corpus["copies"], tmp_path, metrics=("psnr", "ssim", "bas"))
    assert set(result.scores["all"]) == {"psnr", "ssim", "bas"}
    assert set(result.reference["all"]) == {"bas"}
