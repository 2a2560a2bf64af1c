"""The audio-to-motion diffusion branch.

Motion m = (pose (F, P) axis-angle, expression (F, E)) is normalised with training-set statistics
(stored in the model). At diffusion step t the noisy pose and the noisy expression are each
CONCATENATED per frame with the fused audio features and run through their own transformer encoder
of temporal self-attention (pose encoder, expression encoder), which predict the noise (epsilon).
The loss is L_M = E ||eps - eps_theta(m_t, a, t)||^2 over all motion dimensions (paper eq. 2); no
classifier-free guidance.

The encoders' last hidden states, concatenated (B, F, 2 * width), are the motion branch's
representation that the video UNet attends to. It is read at t = 0 from clean motion: the ground
truth in training, the sampled motion at inference, so the video branch sees the same kind of
features in both. In the "w/o motion" ablation (``use_motion=False``) the encoders see the audio
features only (the motion inputs are zeros), nothing is generated and L_M is not defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from scipy.ndimage import gaussian_filter1d
from torch import nn

from imac.models import noise as draws
from imac.models.audio_encoder import AudioEncoder
from imac.models.embeddings import sinusoidal_embedding


@dataclass
class MotionPrediction:
    pose_noise: torch.Tensor        # (B, F, P)
    expression_noise: torch.Tensor  # (B, F, E)
    features: torch.Tensor          # (B, F, 2 * width): pose encoder | expression encoder


def smooth_over_time(motion: torch.Tensor, sigma: float) -> torch.Tensor:
    """``motion`` (B, F, D) smoothed along the frames with a Gaussian of standard deviation ``sigma``
    frames (scipy's ``gaussian_filter1d``: kernel truncated at 4 sigma, edges extended with the first and
    last frame, so a constant stays constant and nothing leaks in from beyond the ends); ``sigma`` 0
    returns ``motion`` itself. Same dtype and device. ``ValueError`` for a negative sigma."""
    if sigma < 0:
        raise ValueError(f"smoothing sigma must be 0 or more frames, got {sigma}")
    if sigma == 0:
        return motion
    smoothed = gaussian_filter1d(motion.detach().float().cpu().numpy(), sigma, axis=1, mode="nearest")
    return torch.from_numpy(smoothed).to(device=motion.device, dtype=motion.dtype)


def _encoder(width: int, layers: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)


class MotionStream(nn.Module):
    """One of the two encoders: [noisy motion part | audio] per frame -> epsilon and hidden states.

    ``noise_skip``: the noise prediction also gets the noisy input itself, scaled per dimension by a
    gate read from the timestep embedding (zero at initialisation): eps = output(hidden) + gate(t) * m_t.
    Without it, everything the stream predicts passes through its ``width`` hidden channels, so a
    stream narrower than its motion (the tiny config: width 64, pose 129 numbers per frame) cannot
    predict the noise in the other dimensions at all: at t = T, where m_t is the noise itself, its
    error is at least (dims - width) / dims of the noise's variance (rank bound), and DDIM's
    clean-motion estimate divides that error by sqrt(alpha-bar): the sampled motion explodes. With
    the gate, each dimension can take the best linear estimate of its own noise, whatever the width.
    """

    def __init__(self, motion_dim: int, audio_width: int, width: int, layers: int, heads: int,
                 dropout: float, noise_skip: bool = False) -> None:
        super().__init__()
        self.input = nn.Linear(motion_dim + audio_width, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.encoder = _encoder(width, layers, heads, dropout)
        self.output = nn.Linear(width, motion_dim)
        if noise_skip:
            self.skip_gate = nn.Linear(width, motion_dim)
            nn.init.zeros_(self.skip_gate.weight)
            nn.init.zeros_(self.skip_gate.bias)
        else:
            self.skip_gate = None

    def forward(self, noisy: torch.Tensor, audio: torch.Tensor, timesteps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input(torch.cat([noisy, audio.to(noisy.dtype)], dim=-1))
        width = x.shape[-1]
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + sinusoidal_embedding(positions, width).to(x.dtype)[None]
        time = self.time(sinusoidal_embedding(timesteps, width).to(x.dtype))
        x = x + time[:, None, :]
        hidden = self.encoder(x)
        noise = self.output(hidden)
        if self.skip_gate is not None:
            noise = noise + self.skip_gate(time)[:, None, :] * noisy
        return noise, hidden


class MotionModel(ModelMixin, ConfigMixin):
    """Audio encoder + pose and expression encoders + the motion normalisation statistics."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, pose_dim: int, expression_dim: int = 100, n_mfcc: int = 13, hubert_dim: int = 16,
                 mfcc_width: int = 32, mfcc_heads: int = 2, audio_width: int = 64, width: int = 64,
                 layers: int = 2, heads: int = 4, dropout: float = 0.1, use_motion: bool = True,
                 noise_skip: bool = False) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(n_mfcc, hubert_dim, mfcc_width, mfcc_heads, audio_width, dropout)
        self.pose_stream = MotionStream(pose_dim, audio_width, width, layers, heads, dropout, noise_skip)
        self.expression_stream = MotionStream(expression_dim, audio_width, width, layers, heads, dropout, noise_skip)
        self.register_buffer("pose_mean", torch.zeros(pose_dim))
        self.register_buffer("pose_std", torch.ones(pose_dim))
        self.register_buffer("expression_mean", torch.zeros(expression_dim))
        self.register_buffer("expression_std", torch.ones(expression_dim))

    @property
    def feature_width(self) -> int:
        return 2 * self.config.width

    # -- normalisation ---------------------------------------------------------------------------

    def set_normalization(self, pose: np.ndarray, expression: np.ndarray, min_std: float = 1e-3) -> None:
        """Store per-dimension mean and std of training motion ((N, P) and (N, E) frames)."""
        for name, values in (("pose", pose), ("expression", expression)):
            values = np.asarray(values, dtype=np.float64)
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(values.mean(axis=0)))
            getattr(self, f"{name}_std").copy_(torch.from_numpy(np.maximum(values.std(axis=0), min_std)))

    def normalize(self, pose: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((pose - self.pose_mean) / self.pose_std,
                (expression - self.expression_mean) / self.expression_std)

    def denormalize(self, pose: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (pose * self.pose_std + self.pose_mean,
                expression * self.expression_std + self.expression_mean)

    # -- the network -----------------------------------------------------------------------------

    def forward(self, noisy_pose: torch.Tensor, noisy_expression: torch.Tensor, mfcc: torch.Tensor,
                hubert: torch.Tensor, timesteps: torch.Tensor) -> MotionPrediction:
        """Noise prediction for normalised noisy motion at ``timesteps`` (B,), plus the features."""
        audio = self.audio_encoder(mfcc, hubert)
        if not self.config.use_motion:
            noisy_pose = torch.zeros_like(noisy_pose)
            noisy_expression = torch.zeros_like(noisy_expression)
        pose_noise, pose_hidden = self.pose_stream(noisy_pose, audio, timesteps)
        expression_noise, expression_hidden = self.expression_stream(noisy_expression, audio, timesteps)
        return MotionPrediction(pose_noise, expression_noise, torch.cat([pose_hidden, expression_hidden], -1))

    def zero_motion(self, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames = mfcc.shape[:2]
        return (mfcc.new_zeros(batch, frames, self.config.pose_dim),
                mfcc.new_zeros(batch, frames, self.config.expression_dim))

    def representation(self, pose: torch.Tensor | None, expression: torch.Tensor | None,
                       mfcc: torch.Tensor, hubert: torch.Tensor) -> torch.Tensor:
        """The features the video UNet attends to: the encoders at t = 0 on clean normalised motion."""
        if pose is None or expression is None or not self.config.use_motion:
            pose, expression = self.zero_motion(mfcc)
        timesteps = torch.zeros(mfcc.shape[0], device=mfcc.device, dtype=torch.long)
        return self(pose, expression, mfcc, hubert, timesteps).features

    def loss(self, pose: torch.Tensor, expression: torch.Tensor, mfcc: torch.Tensor, hubert: torch.Tensor,
             scheduler, generator: draws.Generators = None) -> torch.Tensor:
        """L_M (eq. 2) for normalised motion: mean squared error of the predicted noise. ``generator``:
        one, or one per sample (``imac.models.noise``)."""
        if not self.config.use_motion:
            raise ValueError("the w/o-motion ablation generates no motion and has no motion loss")
        batch = pose.shape[0]
        timesteps = draws.randint(scheduler.config.num_train_timesteps, batch, generator, pose.device)
        pose_noise = draws.randn(pose.shape, generator, pose.device, pose.dtype)
        expression_noise = draws.randn(expression.shape, generator, pose.device, pose.dtype)
        prediction = self(scheduler.add_noise(pose, pose_noise, timesteps),
                          scheduler.add_noise(expression, expression_noise, timesteps), mfcc, hubert, timesteps)
        predicted = torch.cat([prediction.pose_noise, prediction.expression_noise], dim=-1)
        target = torch.cat([pose_noise, expression_noise], dim=-1)
        return torch.nn.functional.mse_loss(predicted.float(), target.float())

    @torch.no_grad()
    def sample(self, mfcc: torch.Tensor, hubert: torch.Tensor, scheduler, steps: int,
               generator: torch.Generator | None = None, known: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate normalised motion for the audio features (DDIM-style ``scheduler``), epsilon steps.

        ``known`` (B, K, pose_dim + expression_dim), normalised: the first K frames are given (the
        previous window's last frames) and the rest is sampled to continue them, by replacement
        (Lugmayr et al. 2022, RePaint, without resampling): before every step the first K frames of
        the sample are set to ``known`` noised to that step's level, and at the end to ``known``.
        """
        pose, expression = self.zero_motion(mfcc)
        if not self.config.use_motion:
            return pose, expression
        width = self.config.pose_dim
        pose = torch.randn(pose.shape, device=mfcc.device, dtype=mfcc.dtype, generator=generator)
        expression = torch.randn(expression.shape, device=mfcc.device, dtype=mfcc.dtype, generator=generator)
        motion = torch.cat([pose, expression], dim=-1)
        if known is not None and (known.shape[0] != motion.shape[0] or known.shape[2] != motion.shape[2]
                                  or known.shape[1] > motion.shape[1]):
            raise ValueError(f"known motion {tuple(known.shape)} does not fit the sampled {tuple(motion.shape)}")
        scheduler.set_timesteps(steps, device=mfcc.device)
        for t in scheduler.timesteps:
            if known is not None:
                noise = torch.randn(known.shape, device=known.device, dtype=known.dtype, generator=generator)
                motion[:, :known.shape[1]] = scheduler.add_noise(known, noise, t.reshape(1))
            timesteps = t.expand(mfcc.shape[0]).to(mfcc.device)
            prediction = self(motion[..., :width], motion[..., width:], mfcc, hubert, timesteps)
            noise = torch.cat([prediction.pose_noise, prediction.expression_noise], dim=-1)
            motion = scheduler.step(noise, t, motion, generator=generator).prev_sample
        if known is not None:
            motion[:, :known.shape[1]] = known
        return motion[..., :width], motion[..., width:]
