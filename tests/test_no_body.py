"""A generated clip in which no body is found (the person lost: a failure of the method, not a broken
input) is left out of the skeleton metrics only (FGD, Div, BAS), said on their scores, and scored on
every other metric. Before, it was left out of every metric (FVD* included) or stopped the run."""

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from bench.report import markdown_report
from bench.results import BenchResults, MethodResult
from bench.scoring import paired_differences
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.dataset import ClipRecord, find_clips
from metrics.evaluate import ClipError, ClipResult, Evaluator, evaluate, format_table, write_result
from metrics.fgd_training import train_fgd_autoencoder
from metrics.io.video import read_video, write_video
from tests.feature_stand_ins import MeanColourFeatures
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol
from metrics.results import Score, SkippedClip, read_result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("no-body")
    data = root / "toy"
    generate_toy_corpus(data, ToyCorpusConfig(seed=3, identities=2, clips=4, test_clips=2, size=64), progress=False)
    ae = root / "ae"
    train_fgd_autoencoder(data, ae, Protocol(), ToyMarkerPose(), keypoints="dataset", steps=40, latent=8, hidden=32)
    test = find_clips(data, split="test")
    copies, without, lost = root / "copies", root / "without", test[0]
    for clip in test:
        for folder in (copies, without):
            if folder is without and clip is lost:
                continue
            target = folder / clip.identity / f"{clip.clip_id}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip.video, target)
    frames, fps = read_video(lost.video), 25.0
    # the person lost: grey frames of the clip's length, in which the toy extractor finds no marker
    write_video(copies / lost.identity / f"{lost.clip_id}.mp4", np.full_like(frames, 128), fps)
    return {"data": data, "ae": ae, "copies": copies, "without": without, "lost": lost, "test": test,
            "root": root}


def run(corpus, fake, tmp_path, **options):
    return evaluate(corpus["data"], fake, ("fgd", "div", "bas", "fvd"), autoencoder=corpus["ae"],
                    i3d=MeanColourFeatures(), extractor=ToyMarkerPose(), cache_dir=tmp_path / "cache", **options)


def test_a_generated_clip_without_a_body_is_left_out_of_the_skeleton_metrics_only(corpus, tmp_path):
    result = run(corpus, corpus["copies"], tmp_path)
    # the reference for the skeleton metrics: the same folder without that clip, scored with the clip
    # left unpaired (allow clips), a route that never decodes it
    without = run(corpus, corpus["without"], tmp_path, allow=["clips"])
    scores, reference = result.scores["all"], without.scores["all"]
    for metric in ("fgd", "div", "bas"):
        assert (scores[metric].value, scores[metric].ci_low, scores[metric].ci_high) == pytest.approx(
            (reference[metric].value, reference[metric].ci_low, reference[metric].ci_high), rel=1e-12, nan_ok=True)
        said = [w for w in scores[metric].warnings if "show no body" in w]
        assert len(said) == 1 and corpus["lost"].label in said[0]
        assert f"1 of {len(corpus['test'])} generated clips show no body" in said[0]
        assert result.provenance[metric].n_fake == len(corpus["test"]) - 1
    assert scores["fgd"].counts["n_fake_clips"] == len(corpus["test"]) - 1
    # FVD* scores every clip: its 16-frame clips counted from the manifest's frame counts
    frames = {json.loads(line)["clip_id"]: json.loads(line)["num_frames"]
              for line in (corpus["data"] / "manifest.jsonl").read_text().splitlines()}
    assert scores["fvd"].counts["n_fake_clips"] == len(corpus["test"])
    assert scores["fvd"].counts["n_fake_i3d_clips"] == sum(frames[c.clip_id] // 16 for c in corpus["test"])
    assert not [w for w in scores["fvd"].warnings if "show no body" in w]
    assert scores["fvd"].value != pytest.approx(reference["fvd"].value)
    assert result.provenance["fvd"].n_fake == len(corpus["test"])
    # listed as left out of those metrics only, and so read back
    (skip,) = result.skipped
    assert (skip.side, skip.clip, skip.metrics) == ("fake", corpus["lost"].label, ("fgd", "div", "bas"))
    assert skip.reason.startswith("no body found: a shoulder is never visible")
    assert f"from FGD, Div, BAS: no body found" in format_table(result)
    path, _ = write_result(result, tmp_path / "result.json")
    assert read_result(path).skipped == result.skipped


def test_a_real_clip_without_a_body_still_stops_the_run(corpus, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(corpus["data"], data)
    lost = corpus["lost"]
    frames, fps = read_video(lost.video), 25.0
    write_video(data / lost.identity / f"{lost.clip_id}.mp4", np.full_like(frames, 128), fps)
    with pytest.raises(ClipError, match=f"real clip {lost.label}: .*a shoulder is never visible"):
        evaluate(data, corpus["copies"], ("fgd",), autoencoder=corpus["ae"], extractor=ToyMarkerPose(),
                 cache_dir=None)


def test_a_skipped_clip_s_metrics_are_read_back_checked():
    data = SkippedClip("fake", "a/b", "a/b.mp4", "no body found", ("fgd", "bas")).to_dict()
    assert SkippedClip.from_dict(data).metrics == ("fgd", "bas")
    assert "metrics" not in SkippedClip("fake", "a/b", "a/b.mp4", "damaged").to_dict()
    with pytest.raises(ValueError, match="skipped clip 'a/b': metrics: expected a list of metric ids"):
        SkippedClip.from_dict({**data, "metrics": "fgd"})


def _record(label: str, bas: float, no_body: str | None = None) -> ClipResult:
    identity, clip_id = label.split("/")
    clip = ClipRecord(identity=identity, clip_id=clip_id, video=f"{label}.mp4")
    return ClipResult(clip, "fake", 25.0, (64, 64), bas=None if no_body else bas, bas_frames=None if no_body else 100,
                      no_body=no_body)


def test_paired_differences_of_a_skeleton_metric_pair_the_clips_both_methods_show_a_body_in():
    labels = ["a/c1", "a/c2", "a/c3", "a/c4"]
    a = [0.9, 0.5, 0.7, 0.2]
    b = [0.4, 0.6, 0.1, 0.3]
    scorer = SimpleNamespace(
        evaluator=Evaluator(("bas",), Protocol()),
        real=lambda: [dataclasses.replace(_record(label, 0.0), side="real") for label in labels],
        fake_records={"a": [_record(label, value, "lost" if label == "a/c2" else None)
                            for label, value in zip(labels, a)],
                      "b": [_record(label, value) for label, value in zip(labels, b)]})
    (row,) = paired_differences(scorer, ["a", "b"])
    kept = [i for i, label in enumerate(labels) if label != "a/c2"]
    assert row["pairs"] == len(kept)
    assert row["estimate"] == pytest.approx(np.mean([a[i] for i in kept]) - np.mean([b[i] for i in kept]))


def test_the_report_names_clips_without_a_body():
    score = Score(2.0, 1.0, 3.0, {"n_fake_clips": 1})
    methods = {"imac": MethodResult(name="imac", label="IMAC", kind="model", scores={"all": {"fgd": score}},
                                    no_body={"ines/ines_005": "no body found: a shoulder is never visible"})}
    results = BenchResults(run={"test_clips": ["ines/ines_004", "ines/ines_005"], "data": "toy", "seed": 0,
                                "device": "cpu"}, protocol={}, protocol_label="p (1.2, abc)", metrics=("fgd",),
                           methods=methods, paired=[], networks={})
    report = markdown_report(results, [])
    assert ("Generated clips in which no body was found (left out of FGD, Div and BAS only, which then read better "
            "than the method is; scored on the other metrics; listed under Methods): IMAC 1.") in report
    assert "IMAC ⚠ 1 clip(s) without a body" in report
    assert ("| ⚠ IMAC: ines/ines_005 | not scored on FGD, Div, BAS | no body found: a shoulder is never visible |"
            in report)
    again = BenchResults.from_dict(json.loads(json.dumps(results.to_dict())), "results.json")
    assert again.methods["imac"].no_body == methods["imac"].no_body


def test_the_clips_column_gives_the_range_where_metrics_rest_on_different_counts():
    from bench.report import latex_table, markdown_table

    row = {"fgd": Score(2.0, 1.0, 3.0, {"n_fake_clips": 3}), "fvd": Score(9.0, 8.0, 10.0, {"n_fake_clips": 4})}
    results = BenchResults(run={"test_clips": ["a/1", "a/2", "a/3", "a/4"]}, protocol={}, protocol_label="p",
                           metrics=("fgd", "fvd"), methods={"m": MethodResult(name="m", label="M", kind="model",
                                                                              scores={"all": row})},
                           paired=[], networks={})
    assert markdown_table(results).splitlines()[-1].endswith("| 3-4 |")
    assert "& 3--4 \\\\" in latex_table(results)
