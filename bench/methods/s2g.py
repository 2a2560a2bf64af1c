"""S2G (reimplementation) as a benchmark method: keypoints sampled from speech, then the reference
image warped to them by one thin-plate spline.

What is kept of S2G and what is simplified: ``bench.baselines.s2g`` (the warp and the options of
the ``s2g`` section); the audio -> keypoint model: ``bench.baselines.keypoint_motion``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.baselines.keypoint_geometry import retarget
from bench.baselines.keypoint_motion import KeypointMotion, shared_folder, shared_model_changes, shared_motion_training
from bench.baselines.s2g import S2GOptions, warp_video
from bench.methods.base import BenchContext, Method, check_model_of_videos, made_videos, reference_keypoints
from bench.side_by_side import Training
from metrics.dataset import ClipRecord


class S2GMethod(Method):
    name = "s2g"
    label = "S2G (reimplementation)"
    kind = "model"
    # Its trainers are data-parallel (``context.processes``, ``metrics.training``): under a launch every
    # process prepares at once and the main one writes the model folders.
    prepares_together = True

    def __init__(self) -> None:
        self.model: KeypointMotion | None = None
        self.options = S2GOptions()
        self.pose_extractor = None

    def check_folder(self, context: BenchContext) -> None:
        """Refuse a run folder holding S2G videos made with another keypoint motion model than the one
        this run's options key to (``keypoint_motion.shared_model_changes``); reads cards, trains nothing."""
        videos = made_videos(context)
        if videos is not None:
            _, motion_options = S2GOptions.split(context.options, self.name)
            check_model_of_videos(videos, "a keypoint motion model",
                                  lambda: shared_model_changes(context, motion_options))

    def made_with(self, context: BenchContext) -> dict[str, Any]:
        """The warp's and the keypoint model's options (defaults filled in) and that model's folder."""
        options, motion_options = S2GOptions.split(context.options, self.name)
        return {"options": options, "motion": motion_options,
                "motion_model": shared_folder(context, motion_options).name}

    def side_trainings(self, context: BenchContext) -> list[Training]:
        training = shared_motion_training(context, S2GOptions.split(context.options, self.name)[1])
        return [training] if training is not None else []

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        self.options, motion_options = S2GOptions.split(context.options, self.name)
        self.pose_extractor = context.pose_extractor
        self.model = KeypointMotion.train_or_load_shared(context, motion_options)
        facts = self.model.facts
        return {"model": str(self.model.folder), "trained": facts.get("trained"), "steps": facts.get("steps"),
                "training_seconds": facts.get("seconds"), "parameters": self.model.parameter_count,
                "points": len(self.model.points), "regularization": self.options.regularization}

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        image = clip.first_frame()
        reference = reference_keypoints(clip, self.pose_extractor)
        keypoints = self.model.sample(clip.load_audio(), clip.num_frames, clip.fps, reference, seed)
        keypoints = retarget(keypoints, reference, self.model.options.score_threshold)
        frames = warp_video(image, reference, keypoints, self.model.points, self.model.options.score_threshold,
                            self.options)
        return frames
