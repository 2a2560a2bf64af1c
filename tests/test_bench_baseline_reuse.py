"""imac-bench run reports (and completes) the S2G and MYA videos of a run folder only if they were made
with the models this run would use: the shared keypoint motion model, MYA's generator and the shared
tiny VAE (which IMAC's tiny config uses too). A new version whose defaults changed one of them asks for
a new --out instead of mixing two models' videos in one row. The model cards are written by hand, as
the trainers write them: the checks read cards only, and train nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from bench.baselines.keypoint_motion import CARD, FORMAT, KeypointMotionOptions
from bench.baselines.pose_guided import MYAOptions
from bench.baselines.pose_guided_training import GENERATOR_CARD
from bench.baselines.s2g import S2GOptions
from bench.config import config_from_dict
from bench.methods.base import BenchContext, as_json
from bench.methods.imac_method import IMACMethod, IMACOptions
from bench.methods.mya import MYAMethod
from bench.methods.s2g import S2GMethod
from bench.runner import RunMismatchError, RunPlan, RunSettings, SharedModels, check_made_with, vae_training_changes
from imac.config import IMACConfig, load_config
from imac.training.autoencoder import TINY_VAE_TRAINING
from metrics.options import OptionsError
from metrics.protocol import get_protocol

SEED = 0
VAE_STEPS = 7
MOTION = {"steps": 300, "window": 40}                 # the keypoint model's options in both sections
S2G_OPTIONS = dict(MOTION)
MYA_OPTIONS = {"lr": 0.001, "unet": {"norm_num_groups": 8}, "motion": dict(MOTION)}
IMAC_OPTIONS = {"config": "tiny", "overrides": ["stage2.steps=240"]}
SAMPLING = ("sample_steps", "sample_clip", "smoothing")   # not part of what a keypoint model was trained with


def never_train_the_vae():
    raise AssertionError("check_folder asked for the run's VAE (that trains it)")


def shared_models(run: Path, vae_steps: int = VAE_STEPS) -> SharedModels:
    config = config_from_dict({"metrics": ["bas"], "vae_steps": vae_steps, "methods": {}})
    return SharedModels(run, run / "no-data", config, get_protocol(config.protocol), "cpu", SEED, False)


def context(run: Path, name: str, options: dict) -> BenchContext:
    return BenchContext(data_root=run / "no-data", work_dir=run / "work" / name, seed=SEED, options=dict(options),
                        progress=False, shared_vae=never_train_the_vae,
                        check_shared_vae=shared_models(run).check_vae)


def videos(run: Path, name: str) -> Path:
    """A method's folder of finished videos (the checks look at their presence only)."""
    folder = run / name / "ines"
    folder.mkdir(parents=True)
    (folder / "ines_006.mp4").write_bytes(b"")
    return run / name


def keypoint_key(**options) -> dict:
    """The training key a keypoint motion model of ``options`` (over the defaults) records."""
    values = {k: v for k, v in asdict(KeypointMotionOptions(**options)).items() if k not in SAMPLING}
    return {"options": values, "seed": SEED, "identities": None}


def keypoint_digest(key: dict) -> str:
    """The folder suffix ``train_or_load_shared`` gives a keypoint model of training key ``key``."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def keypoint_model(run: Path, key: dict, folder: str | None = None) -> Path:
    """A keypoint motion model folder as ``KeypointMotion.save`` leaves it (its card), named as
    ``train_or_load_shared`` names it unless ``folder`` is given."""
    path = run / "work" / (folder or f"keypoint_motion-{keypoint_digest(key)}")
    path.mkdir(parents=True)
    (path / CARD).write_text(json.dumps({"format": FORMAT, "training_key": key}))
    return path


def generator(run: Path, settings: dict) -> Path:
    """MYA's finished generator folder as ``save_generator`` leaves it (config and card)."""
    path = run / "work" / "mya" / "generator"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / GENERATOR_CARD).write_text(json.dumps({"settings": settings, "facts": {}}))
    return path


def mya_settings(**changed) -> dict:
    """What MYA's generator card records for MYA_OPTIONS (``training_settings``), some values changed."""
    return {**MYAOptions.from_dict(MYA_OPTIONS).training_settings(), **changed}


def vae_card(run: Path, steps: int = VAE_STEPS, **settings) -> Path:
    """``work/vae/training.json`` as ``train_autoencoder`` writes it for the run's VAE (resolution and
    steps at the top, the rest under settings, tuples as lists, the runtime it ran on)."""
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_VAE_TRAINING["vae_kwargs"].items()}
    recorded = {"vae_kwargs": kwargs, "batch_size": TINY_VAE_TRAINING["batch_size"], "lr": TINY_VAE_TRAINING["lr"],
                "kl_weight": 1e-6, "seed": SEED, "reconstruction": TINY_VAE_TRAINING["reconstruction"],
                "chroma_weight": TINY_VAE_TRAINING["chroma_weight"], "optimizer": "Adam", "device": "cuda:0",
                "torch_threads": 16, "processes": 2, **settings}
    path = run / "work" / "vae" / "training.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"resolution": TINY_VAE_TRAINING["resolution"], "steps": steps,
                                "settings": recorded, "loss_curve": []}))
    return path


def finished(run: Path) -> Path:
    """A run folder of this version: S2G and MYA videos, their models and the VAE of these settings."""
    videos(run, "s2g")
    videos(run, "mya")
    keypoint_model(run, keypoint_key(**MOTION))
    generator(run, mya_settings())
    vae_card(run)
    return run


# -- a folder of this version passes -----------------------------------------------------------------


def test_a_folder_made_with_this_runs_models_passes(tmp_path):
    run = finished(tmp_path)
    S2GMethod().check_folder(context(run, "s2g", S2G_OPTIONS))
    MYAMethod().check_folder(context(run, "mya", MYA_OPTIONS))
    shared_models(run).check_vae()
    assert shared_models(run).vae() == run / "work" / "vae"          # reused: no data to train on here


def test_sampling_options_of_the_keypoint_model_do_not_count(tmp_path):
    run = finished(tmp_path)
    S2GMethod().check_folder(context(run, "s2g", {**S2G_OPTIONS, "sample_steps": 5, "smoothing": 0.0}))


# -- the keypoint motion model ---------------------------------------------------------------------


def test_videos_of_a_keypoint_model_with_another_option_are_refused_naming_it(tmp_path):
    # an earlier version trained it with 299 steps: this run's 300 key to another folder, which is absent
    run = tmp_path
    videos(run, "s2g")
    videos(run, "mya")
    old = keypoint_model(run, keypoint_key(**{**MOTION, "steps": 299}))
    generator(run, mya_settings())
    vae_card(run)
    for method, name, options in ((S2GMethod(), "s2g", S2G_OPTIONS), (MYAMethod(), "mya", MYA_OPTIONS)):
        with pytest.raises(ValueError) as error:
            method.check_folder(context(run, name, options))
        message = str(error.value)
        assert message.startswith(f"{run / name} holds videos made with a keypoint motion model")
        assert f"{old.name}: options.steps: 299 -> 300" in message and "give a new --out" in message
        assert "delete" not in message and "remove" not in message


def test_a_keypoint_folder_holding_another_training_key_is_refused(tmp_path):
    run = tmp_path
    videos(run, "s2g")
    folder = keypoint_model(run, keypoint_key(**MOTION))
    (folder / CARD).write_text(json.dumps({"format": FORMAT, "training_key": keypoint_key(**{**MOTION, "layers": 3})}))
    with pytest.raises(ValueError, match=r"options.layers: 3 -> 2"):
        S2GMethod().check_folder(context(run, "s2g", {**S2G_OPTIONS, "layers": 2}))


def test_videos_whose_keypoint_model_is_gone_are_refused(tmp_path):
    run = tmp_path
    videos(run, "s2g")
    with pytest.raises(ValueError, match=r"s2g holds videos made with a keypoint motion model .*no model in "
                                         r"keypoint_motion-\w+ \(nor in another keypoint_motion-\*\)"):
        S2GMethod().check_folder(context(run, "s2g", S2G_OPTIONS))


def test_an_unreadable_keypoint_card_is_refused_naming_it(tmp_path):
    run = tmp_path
    videos(run, "s2g")
    folder = keypoint_model(run, keypoint_key(**MOTION))
    (folder / CARD).write_text("{not json")
    with pytest.raises(ValueError, match=rf"cannot be compared.*{CARD}.*give a new --out"):
        S2GMethod().check_folder(context(run, "s2g", S2G_OPTIONS))
    (folder / CARD).write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"{CARD}: not a JSON object"):
        S2GMethod().check_folder(context(run, "s2g", S2G_OPTIONS))


# -- MYA's generator -------------------------------------------------------------------------------


@pytest.mark.parametrize("with_videos", [True, False])
def test_a_mya_generator_with_other_training_settings_is_refused_naming_them(tmp_path, with_videos):
    # without videos too: the run checks folders before the shared models train, and training them first
    # only to refuse the generator afterwards would waste minutes
    run = finished(tmp_path)
    if not with_videos:
        shutil.rmtree(run / "mya")
    card = run / "work" / "mya" / "generator" / GENERATOR_CARD
    old = mya_settings(lr=0.5, unet={**mya_settings()["unet"], "norm_num_groups": 4})
    card.write_text(json.dumps({"settings": old, "facts": {}}))
    with pytest.raises(ValueError) as error:
        MYAMethod().check_folder(context(run, "mya", MYA_OPTIONS))
    message = str(error.value)
    assert message.startswith(f"{card.parent}: trained with other settings than this run's mya options")
    assert "lr: 0.5 -> 0.001" in message and "unet.norm_num_groups: 4 -> 8" in message
    assert message.endswith(f"{run / 'mya'} holds videos made with it: give a new --out to run these settings"
                            if with_videos else "remove the folder to train again, or give a new --out")


def test_a_given_mya_model_is_not_compared_with_the_runs_settings(tmp_path):
    run = finished(tmp_path)
    card = run / "work" / "mya" / "generator" / GENERATOR_CARD
    card.write_text(json.dumps({"settings": mya_settings(lr=0.5), "facts": {}}))
    MYAMethod().check_folder(context(run, "mya", {**MYA_OPTIONS, "model": str(tmp_path / "given")}))


# -- the shared tiny VAE -----------------------------------------------------------------------------


def test_a_vae_trained_with_other_settings_is_refused_by_the_run_naming_them(tmp_path):
    run = tmp_path
    old_kwargs = {**json.loads(json.dumps(TINY_VAE_TRAINING["vae_kwargs"])), "block_out_channels": [8, 16, 32]}
    vae_card(run, steps=VAE_STEPS + 1, vae_kwargs=old_kwargs)
    new = list(TINY_VAE_TRAINING["vae_kwargs"]["block_out_channels"])
    expected = [f"steps: {VAE_STEPS + 1} -> {VAE_STEPS}", f"vae_kwargs.block_out_channels: [8, 16, 32] -> {new}"]
    with pytest.raises(RunMismatchError) as error:
        shared_models(run).vae()                                       # refused, not reused nor trained again
    message = str(error.value)
    assert message.startswith(f"{run / 'work' / 'vae'}: the shared tiny VAE was trained with other settings")
    assert all(change in message for change in expected) and "give a new --out" in message


def test_a_vae_of_another_kl_weight_is_refused(tmp_path):
    # kl_weight was once left to train_autoencoder's default: the tiny training now spells it out
    vae_card(tmp_path, kl_weight=1e-3)
    with pytest.raises(RunMismatchError, match=r"kl_weight: 0\.001 -> 1e-06"):
        shared_models(tmp_path).check_vae()


def test_the_vae_card_is_read_as_train_autoencoder_writes_it():
    training = {**TINY_VAE_TRAINING, "steps": VAE_STEPS, "seed": SEED}
    card = {"resolution": training["resolution"], "steps": VAE_STEPS,
            "settings": {**json.loads(json.dumps(training)), "device": "cpu", "torch_threads": 2}}
    del card["settings"]["resolution"], card["settings"]["steps"]
    assert vae_training_changes(card, training) == []
    del card["settings"]["chroma_weight"]                               # a card of a version before it
    assert vae_training_changes(card, training) == [f"chroma_weight: (absent) -> {training['chroma_weight']!r}"]


def test_an_unreadable_vae_card_is_refused_naming_it(tmp_path):
    path = vae_card(tmp_path)
    path.write_text("{not json")
    with pytest.raises(RunMismatchError, match=r"training.json: cannot compare the shared tiny VAE .*give a new --out") as error:
        shared_models(tmp_path).vae()
    assert str(error.value).count(str(path)) == 1                      # named once, not by the reader again
    path.write_text(json.dumps({"steps": 7}))
    with pytest.raises(RunMismatchError, match=r"no 'settings' mapping"):
        shared_models(tmp_path).check_vae()


def test_mya_and_imac_videos_made_with_another_vae_are_refused(tmp_path):
    run = finished(tmp_path)
    vae_card(run, lr=0.5)
    with pytest.raises(RunMismatchError, match=rf"lr: 0.5 -> {TINY_VAE_TRAINING['lr']!r}"):
        MYAMethod().check_folder(context(run, "mya", MYA_OPTIONS))
    IMACMethod("imac").check_folder(context(run, "imac", IMAC_OPTIONS))          # no IMAC videos yet
    videos(run, "imac")
    with pytest.raises(RunMismatchError, match=r"the shared tiny VAE was trained with other settings"):
        IMACMethod("imac").check_folder(context(run, "imac", IMAC_OPTIONS))
    given = {**IMAC_OPTIONS, "model": str(tmp_path / "given")}          # a given model brings its own VAE
    IMACMethod("imac").check_folder(context(run, "imac", given))


# -- what is not refused ---------------------------------------------------------------------------


def test_without_videos_nothing_is_refused(tmp_path):
    # no video was made with the old models: the missing ones are trained as usual (the keypoint
    # model in the folder its options key to; a stale generator is refused by the test above)
    run = tmp_path
    keypoint_model(run, keypoint_key(**{**MOTION, "steps": 299}))
    vae_card(run, lr=0.5)
    S2GMethod().check_folder(context(run, "s2g", S2G_OPTIONS))
    MYAMethod().check_folder(context(run, "mya", MYA_OPTIONS))
    IMACMethod("imac").check_folder(context(run, "imac", IMAC_OPTIONS))


def test_the_runner_gives_the_methods_its_vae_check(tmp_path):
    shared = shared_models(tmp_path)
    config = shared.config
    plan = RunPlan(settings=RunSettings(methods=["mya"], out=tmp_path, config=config, progress=False), config=config,
                   out=tmp_path, data=tmp_path / "no-data", device="cpu", protocol=shared.protocol, clips=(),
                   methods=(MYAMethod(),), shared=shared)
    given = plan.context(plan.methods[0])
    assert given.check_shared_vae == shared.check_vae and given.shared_vae == shared.vae
    vae_card(tmp_path, lr=0.5)
    videos(tmp_path, "mya")
    keypoint_model(tmp_path, keypoint_key())
    with pytest.raises(RunMismatchError, match=r"lr: 0.5"):
        MYAMethod().check_folder(replace(given, shared_vae=never_train_the_vae))


# -- what the videos were made with (Method.made_with, recorded by the runner) ------------------------


def recorded(run: Path, name: str, made_with: dict) -> None:
    """``work/<name>/method.json`` as the runner leaves it after preparing (facts and ``made_with``)."""
    path = run / "work" / name / "method.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"prepare_seconds": 1.0, "made_with": made_with}))


def test_s2g_and_mya_record_their_options_and_the_keypoint_model_they_sample_with(tmp_path):
    run = finished(tmp_path)
    folder = run / "work" / f"keypoint_motion-{keypoint_digest(keypoint_key(**MOTION))}"
    s2g = as_json(S2GMethod().made_with(context(run, "s2g", S2G_OPTIONS)))
    mya = as_json(MYAMethod().made_with(context(run, "mya", MYA_OPTIONS)))
    for made_with in (s2g, mya):
        assert made_with["motion_model"] == folder.name
        assert made_with["motion"] == as_json(asdict(KeypointMotionOptions(**MOTION)))   # defaults filled in
    assert s2g["options"]["regularization"] == S2GOptions().regularization
    assert set(mya["options"]) == {f.name for f in fields(MYAOptions)} and mya["options"]["lr"] == 0.001


def test_videos_sampled_by_another_keypoint_model_are_refused_though_this_keys_model_exists(tmp_path):
    # S2G's videos were made with an older model; a later run trained this key's model (MYA's, say):
    # its existence does not make the old videos this model's
    run = finished(tmp_path)
    made_with = as_json(S2GMethod().made_with(context(run, "s2g", S2G_OPTIONS)))
    recorded(run, "s2g", {**made_with, "motion_model": "keypoint_motion-000000000000"})
    digest = keypoint_digest(keypoint_key(**MOTION))
    with pytest.raises(RunMismatchError, match=rf"s2g made with other settings than this run's \(motion_model: "
                                               rf"'keypoint_motion-000000000000' -> 'keypoint_motion-{digest}', as "
                                               rf"{run / 'work' / 's2g' / 'method.json'} records them\)"):
        check_made_with(S2GMethod(), context(run, "s2g", S2G_OPTIONS))
    recorded(run, "s2g", made_with)
    check_made_with(S2GMethod(), context(run, "s2g", S2G_OPTIONS))


def test_videos_of_another_sampling_default_are_refused_naming_it(tmp_path):
    # a new version samples the keypoints with 25 steps where the videos were made with 20 (no config key says so)
    run = finished(tmp_path)
    made_with = as_json(MYAMethod().made_with(context(run, "mya", MYA_OPTIONS)))
    made_with["motion"]["sample_steps"] = 20
    recorded(run, "mya", made_with)
    now = KeypointMotionOptions(**MOTION).sample_steps
    with pytest.raises(RunMismatchError, match=rf"motion.sample_steps: 20 -> {now}"):
        check_made_with(MYAMethod(), context(run, "mya", MYA_OPTIONS))


def imac_card(folder: Path, **sampling) -> Path:
    """A trained stage-2 model's card (``imac.json``) in ``folder`` whose config has the tiny config's values
    but ``sampling`` (section__key; None: a key the card of an earlier version lacks)."""
    config = load_config("tiny").to_dict()
    for key, value in sampling.items():
        section, name = key.split("__")
        if value is None:
            config[section].pop(name)
        else:
            config[section][name] = value
    folder.mkdir(parents=True)
    (folder / "imac.json").write_text(json.dumps({"config": config, "stage": "stage2", "hubert_id": "tiny"}))
    return folder / "imac.json"


def test_a_model_trained_in_the_run_samples_as_this_versions_config_says(tmp_path):
    # its card says 7 video steps (an earlier version's default, say): a reused folder samples as a fresh
    # one would, with the config's (and the run's overrides)
    card = imac_card(tmp_path / "work" / "imac" / "stage2" / "model", video__sample_steps=7)
    ctx = context(tmp_path, "imac", IMAC_OPTIONS)
    tiny = load_config("tiny")
    assert IMACMethod("imac").made_with(ctx)["sampling"]["video.sample_steps"] == tiny.video.sample_steps != 7
    trained = IMACConfig.from_dict(json.loads(card.read_text())["config"])
    sampled = IMACMethod("imac").sampling_config(trained, ctx, IMACOptions.from_dict(IMAC_OPTIONS))
    assert sampled.video.sample_steps == tiny.video.sample_steps
    assert sampled.stage2.steps == trained.stage2.steps and sampled.video.unet == trained.video.unet   # the weights' own
    given = {**IMAC_OPTIONS, "overrides": ["stage2.steps=240", "video.sample_steps=9", "video.chunk_reference=last_frame"]}
    sampling = IMACMethod("imac").made_with(context(tmp_path, "imac", given))["sampling"]
    assert sampling["video.sample_steps"] == 9 and sampling["video.chunk_reference"] == "last_frame"


def test_a_given_model_samples_with_its_cards_settings_and_the_runs_sampling_overrides(tmp_path):
    folder = imac_card(tmp_path / "given", video__sample_steps=7, video__handover=None).parent
    given = {"config": "tiny", "model": str(folder)}
    sampling = IMACMethod("imac").made_with(context(tmp_path, "imac", given))["sampling"]
    assert sampling["video.sample_steps"] == 7                                   # the card's
    assert sampling["video.handover"] == IMACConfig().video.handover            # absent: this version's default
    overridden = {**given, "overrides": ["video.sample_steps=9"]}
    assert IMACMethod("imac").made_with(context(tmp_path, "imac", overridden))["sampling"]["video.sample_steps"] == 9


def test_imac_videos_sampled_with_other_settings_are_refused(tmp_path):
    imac_card(tmp_path / "work" / "imac" / "stage2" / "model")
    videos(tmp_path, "imac")
    ctx = context(tmp_path, "imac", IMAC_OPTIONS)
    made_with = as_json(IMACMethod("imac").made_with(ctx))
    made_with["sampling"]["video.chunk_reference"] = "last_frame"
    recorded(tmp_path, "imac", made_with)
    with pytest.raises(RunMismatchError, match=r"video.chunk_reference: 'last_frame' -> 'anchored', as .*method.json "
                                               r"records them\): give a new --out"):
        check_made_with(IMACMethod("imac"), ctx)


def test_an_unreadable_card_of_a_given_model_is_named(tmp_path):
    card = imac_card(tmp_path / "given")
    card.write_text("{not json")
    with pytest.raises(ValueError, match=r"imac.json: cannot read the model's sampling settings"):
        IMACMethod("imac").made_with(context(tmp_path, "imac", {"config": "tiny", "model": str(card.parent)}))


def test_imac_given_a_pretrained_i2vgenxl_by_override_does_not_take_the_runs_vae(tmp_path):
    ctx = context(tmp_path, "imac", IMAC_OPTIONS)
    options = IMACOptions.from_dict({**IMAC_OPTIONS, "overrides": ["video.pretrained=/models/i2vgen-xl"]})
    assert IMACMethod("imac").uses_shared_vae(ctx, IMACOptions.from_dict(IMAC_OPTIONS))
    assert not IMACMethod("imac").uses_shared_vae(ctx, options)


# -- the shared VAE's frame size ------------------------------------------------------------------------


def test_a_method_drawing_frames_of_another_size_than_the_shared_vae_is_refused_before_training(tmp_path):
    shared = shared_models(tmp_path)
    shared.config.vae_resolution = 128
    config = shared.config
    plan = RunPlan(settings=RunSettings(methods=["mya"], out=tmp_path, config=config, progress=False), config=config,
                   out=tmp_path, data=tmp_path / "no-data", device="cpu", protocol=shared.protocol, clips=(),
                   methods=(MYAMethod(),), shared=shared)
    given = replace(plan.context(plan.methods[0]), shared_vae=never_train_the_vae)
    assert given.shared_vae_resolution == 128
    with pytest.raises(ValueError, match=r"^mya: resolution is 64 px but the run's shared VAE takes 128 px frames .*"
                                         r"give resolution=128, or vae_resolution: 64"):
        MYAMethod().check_folder(replace(given, options=dict(MYA_OPTIONS)))      # no videos: refused all the same
    MYAMethod().check_folder(replace(given, options={**MYA_OPTIONS, "resolution": 128}))
    imac = replace(given, work_dir=tmp_path / "work" / "imac", options=dict(IMAC_OPTIONS))
    with pytest.raises(ValueError, match=r"^imac: data.resolution is 64 px but .* give data.resolution=128"):
        IMACMethod("imac").check_folder(imac)
    IMACMethod("imac").check_folder(replace(imac, options={**IMAC_OPTIONS, "overrides": [
        *IMAC_OPTIONS["overrides"], "data.resolution=128"]}))
    given_model = {**IMAC_OPTIONS, "model": str(tmp_path / "given")}          # a given model brings its own VAE
    IMACMethod("imac").check_folder(replace(imac, options=given_model))


def test_the_run_trains_its_vae_at_the_configs_frame_size():
    from imac.training.autoencoder import tiny_vae_training

    config = config_from_dict({"metrics": ["bas"], "vae_resolution": 128, "methods": {}})
    shared = SharedModels(Path("run"), Path("data"), config, get_protocol(config.protocol), "cpu", SEED, False)
    assert shared.vae_training() == {**tiny_vae_training(128), "steps": config.vae_steps, "seed": SEED}
    assert shared.vae_training()["vae_kwargs"]["block_out_channels"] == (8, 16, 32, 64)
    with pytest.raises(OptionsError, match=r"vae_resolution: 96 px; the tiny VAE takes 32, 64, 128 px"):
        config_from_dict({"metrics": ["bas"], "vae_resolution": 96, "methods": {}})
