"""The toy pose extractor recovers the rendered keypoints, also from blurred and faded frames."""

import colorsys

import numpy as np
import pytest
from scipy import ndimage

from bench.data.toy.corpus import ToyCorpusConfig, make_clip
from bench.data.toy.identities import make_identities
from bench.data.toy.render import FrameRenderer
from metrics.pose import toy_markers as mk
from metrics.pose import wholebody as wb
from metrics.pose.toy import ToyMarkerPose, rgb_to_hue_chroma

BODY = [wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                 "left_wrist", "right_wrist", "left_hip", "right_hip")]
HANDS = list(wb.LEFT_HAND) + list(wb.RIGHT_HAND)


@pytest.fixture(scope="module")
def renders():
    """40 frames of each of the four preset identities with their ground-truth keypoints."""
    config = ToyCorpusConfig()
    out = []
    for i, identity in enumerate(make_identities(4, seed=0)):
        clip = make_clip(identity, i, 0, config)
        renderer = FrameRenderer(identity.shape, identity.appearance, identity.camera(config.size))
        frames = renderer.render(clip["pose"][:80:2], clip["expression"][:80:2])
        out.append((frames, clip["keypoints"][:80:2]))
    return out


def errors(frames, truth, min_score=0.5):
    found = ToyMarkerPose()(frames)
    both = (truth[..., 2] > 0) & (found[..., 2] >= min_score)
    err = np.linalg.norm(found[..., :2] - truth[..., :2], axis=-1)
    return found, both, err


def test_colour_conversion_matches_colorsys():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    hue, chroma = rgb_to_hue_chroma(pixels)
    for (r, g, b), h, c in zip(pixels, hue, chroma):
        ref_h, ref_s, ref_v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert c == pytest.approx(ref_s * ref_v, abs=1e-6)
        if c > 1e-3:
            assert min(abs(h - 360 * ref_h), 360 - abs(h - 360 * ref_h)) < 1e-3
    for name, h in mk.all_marker_hues().items():
        rgb = np.array([[mk.hue_to_rgb(h)]], dtype=np.uint8)
        got_h, got_c = rgb_to_hue_chroma(rgb)
        assert got_c[0, 0] == pytest.approx(1.0) and abs(got_h[0, 0] - h) < 1.5, name


def test_marker_hues_are_far_apart_and_away_from_skin():
    hues = sorted(mk.all_marker_hues().values())
    gaps = np.diff(hues + [hues[0] + 360])
    assert gaps.min() >= 30.0
    assert all(not 10.0 <= h <= 40.0 for h in hues)


def test_extractor_recovers_rendered_keypoints(renders):
    body_err, hand_err, body_found, body_truth = [], [], 0, 0
    for frames, truth in renders:
        found, both, err = errors(frames, truth)
        body_err.append(err[:, BODY][both[:, BODY]])
        hand_err.append(err[:, HANDS][both[:, HANDS]])
        body_found += both[:, BODY].sum()
        body_truth += (truth[:, BODY, 2] > 0).sum()
        # Points the code does not mark are never reported.
        for name in ("left_ear", "left_knee", "left_big_toe"):
            assert (found[:, wb.index_of(name), 2] == 0).all()
    body_err, hand_err = np.concatenate(body_err), np.concatenate(hand_err)
    assert body_found / body_truth > 0.97
    assert np.median(body_err) < 0.4 and np.percentile(body_err, 99) < 1.5  # pixels, 128 px frames
    assert np.median(hand_err) < 1.0


def test_extractor_works_on_blurred_frames(renders):
    """Generated frames are soft: a Gaussian blur of 1 px costs little on the body joints."""
    all_err = []
    for frames, truth in renders:
        blurred = ndimage.gaussian_filter(frames.astype(np.float32), sigma=(0, 1.0, 1.0, 0)).round().astype(np.uint8)
        _, both, err = errors(blurred, truth, min_score=0.3)
        assert both[:, BODY].sum() / (truth[:, BODY, 2] > 0).sum() > 0.9
        all_err.append(err[:, BODY][both[:, BODY]])
    assert np.median(np.concatenate(all_err)) < 0.8


def test_confidence_falls_when_markers_fade(renders):
    frames, _ = renders[0]
    grey = np.full_like(frames, 128)
    faded = (0.5 * frames.astype(np.float32) + 0.5 * grey).astype(np.uint8)  # chroma halved
    sharp, dull = ToyMarkerPose()(frames), ToyMarkerPose()(faded)
    assert dull[:, BODY, 2].mean() < sharp[:, BODY, 2].mean()
    empty = ToyMarkerPose()(grey[:2])
    assert (empty[..., 2] == 0).all() and (empty[..., :2] == 0).all()


def test_extractor_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ToyMarkerPose()(np.zeros((2, 64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        ToyMarkerPose()(np.zeros((2, 64, 64), dtype=np.uint8))


def test_blob_masses_and_centres_are_scipys():
    """The extractor's blobs (bincount sums in raster order) equal ndimage.sum and center_of_mass."""
    from metrics.pose.toy import _blobs

    rng = np.random.default_rng(4)
    membership = (ndimage.gaussian_filter(rng.random((60, 70)), 2.0) > 0.52) * rng.random((60, 70))
    membership = membership.astype(np.float32)
    labels, count = ndimage.label(membership > 0.05)
    assert count >= 3
    index = np.arange(1, count + 1)
    masses = ndimage.sum(membership, labels, index)
    centres = ndimage.center_of_mass(membership, labels, index)
    expected = sorted(((c[1], c[0], m) for c, m in zip(centres, masses) if m >= 1.0), key=lambda b: -b[2])
    got = _blobs(membership, 1.0)
    assert [(float(xy[0]), float(xy[1]), mass) for xy, mass in got] == [(float(x), float(y), float(m))
                                                                         for x, y, m in expected]
