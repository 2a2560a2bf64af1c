"""Lip sync (metrics.lipsync): the MFCC front end, the offset search against syncnet_python's own
numbers, face tracks and crops, one clip end to end, the set-level reduction and the evaluator hook.

Peer numbers (never produced by this project's code): joonson/syncnet_python at commit
6efbb1c305c23f47a62b09cf4215a8ac45e97d49, file SyncNetInstance.py, function
``SyncNetInstance.evaluate`` (with ``loadParameters`` and ``SyncNetModel.S``), run outside the
project on CPU torch 2.13.0 with python_speech_features 0.6 from PyPI, on the inputs of
``tests/lipsync_fixtures.py``: the stand-in weights ``standin_state_dict()`` saved with
``torch.save`` and loaded by their ``loadParameters``, and ``parity_clip()``. The harness (not
committed) made ``.cuda()`` the identity and replaced the two ffmpeg calls inside ``evaluate`` by
writing the frames losslessly (PNG bytes under their ``%06d.jpg`` names; ``cv2.imread`` decodes by
content) and the audio as 16-bit PCM; batch_size 20, vshift 15. The MFCC rows are
``python_speech_features.mfcc(int16 samples, 16000)`` (v0.6) of the same audio.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics.faces import Face
from metrics.lipsync import (
    TOY_SETTINGS,
    LipSyncConfidence,
    LipSyncDistance,
    LipSyncRecord,
    LipSyncSettings,
    crop_track,
    face_tracks,
    lip_sync_clip,
    mfcc,
    reduce_lip_sync,
    shift_distances,
    sync_offsets,
    to_video_rate,
)
from metrics.registry import ClipInputs, ClipValues, MissingWeights
from metrics.syncnet import SyncNet, SyncNetConfig, save_syncnet
from tests.lipsync_fixtures import parity_clip, standin_state_dict

# python_speech_features.mfcc(int16(parity audio), 16000): rows 0, 1, 97, 118 of (119, 13).
PEER_MFCC_ROWS = {
    0: [17.62829115697726, -15.999944091249608, 10.123052826998206, 0.02377874488404639, -7.1498394143759425,
        -15.310544651713771, -9.068789278931119, -2.574232433474419, 6.318588416605951, -2.5056804871729472,
        -10.899157612840542, -18.389379760711524, -9.45425563685494],
    1: [17.703946919425317, -10.113298428432005, 16.084158787292914, 1.6638923157630747, -11.669531294262848,
        -21.86589041388338, -13.115069238079892, 2.755421587080026, 9.836697426976425, -3.0233837888166333,
        -17.387712817095302, -18.65970010989442, -6.760172981703186],
    97: [18.385834358168324, 0.10529761327184892, 22.106635868840076, -0.003218049505352629, -16.22393753511847,
         -26.062847723753247, -10.722250706748094, 1.795325321237821, 13.477869988760185, -6.888651232860402,
         -16.06506230891365, -17.877642020540684, -9.927604592333564],
    118: [17.67585453715428, -6.340383185030033, 15.231840177798558, -1.215699523736021, -12.602304750009793,
          -16.643417246802947, -1.0690767859877712, 5.059789557338003, -2.1609870005405023, -0.4016175222446061,
          -9.451326961238685, -16.301747639513724, -4.973852467832606],
}
PEER_MFCC_SUM, PEER_MFCC_ABS_SUM = -5625.672608056301, 15889.003952525723

# SyncNetInstance.evaluate on (standin_state_dict(), parity_clip()): offset, conf, min of the mean
# distances, 25 windows, and the 31 mean distances (shifts -15..15 of calc_pdist, rounded to 1e-5).
PEER_OFFSET, PEER_CONFIDENCE, PEER_MIN_DISTANCE, PEER_WINDOWS = 0, 0.8922767639160156, 16.38019561767578, 25
PEER_MEAN_DISTANCES = [
    17.99385, 17.89922, 17.82055, 17.73247, 17.62938, 17.51776, 17.40593, 17.28452, 17.1656, 17.05291, 16.93841,
    16.82904, 16.70977, 16.59265, 16.47599, 16.3802, 16.47278, 16.55947, 16.65517, 16.75953, 16.88322, 17.01117,
    17.14372, 17.27247, 17.40269, 17.50524, 17.5999, 17.67867, 17.76661, 17.86978, 17.98138]
# float32 convolutions summed in another order (batching, thread count): about 2e-6 seen.
TOLERANCE = 1e-4

TINY = SyncNetConfig.reduced(16)


def test_mfcc_equals_python_speech_features():
    _, audio = parity_clip()
    cepstra = mfcc(audio)
    assert cepstra.shape == (119, 13)
    for row, values in PEER_MFCC_ROWS.items():
        np.testing.assert_allclose(cepstra[row], values, rtol=1e-12, atol=1e-10)
    assert math.isclose(cepstra.sum(), PEER_MFCC_SUM, rel_tol=1e-12)
    assert math.isclose(np.abs(cepstra).sum(), PEER_MFCC_ABS_SUM, rel_tol=1e-12)
    int16 = np.round(audio.astype(np.float64) * 32768).astype(np.int16)
    np.testing.assert_array_equal(mfcc(int16), cepstra)      # float in [-1, 1] is read in 16-bit units


def test_mfcc_frame_count():
    # python_speech_features: 1 + ceil((S - 400) / 160) frames, 1 for S <= 400.
    for samples, frames in ((100, 1), (400, 1), (401, 2), (560, 2), (561, 3), (15360, 95)):
        assert mfcc(np.zeros(samples, np.float32)).shape == (frames, 13)


def test_offsets_match_syncnet_python():
    network = SyncNet()
    network.load_state_dict(standin_state_dict())
    frames, audio = parity_clip()
    result = sync_offsets(network.eval(), frames, audio, vshift=15, batch_size=20)
    assert result.windows == PEER_WINDOWS
    assert result.offset == PEER_OFFSET
    assert abs(result.min_distance - PEER_MIN_DISTANCE) < TOLERANCE
    assert abs(result.confidence - PEER_CONFIDENCE) < TOLERANCE
    np.testing.assert_allclose(result.mean_distances, PEER_MEAN_DISTANCES, atol=TOLERANCE)


def test_shift_distances_against_a_direct_loop():
    rng = np.random.default_rng(3)
    video, audio = rng.standard_normal((9, 6)), rng.standard_normal((9, 6))
    vshift = 4
    got = shift_distances(torch.from_numpy(video), torch.from_numpy(audio), vshift)
    for i in range(9):
        for k in range(-vshift, vshift + 1):
            other = audio[i + k] if 0 <= i + k < 9 else np.zeros(6)
            assert abs(got[i, k + vshift] - np.linalg.norm(video[i] - other + 1e-6)) < 1e-9


def test_offset_sign_and_confidence_from_distances():
    # Embeddings equal when audio window i + 3 meets video window i: the best shift is k = +3, syncnet_python's
    # offset = vshift - argmin = -3 (negative: the audio lags); conf = median - min.
    class Shifted(SyncNet):
        def embed_video(self, frames):
            return frames[:, 0, 0, 0, :2].float()

        def embed_audio(self, mfcc):
            return mfcc[:, 0, :2, 0].float()         # coefficients 0, 1 of the window's first MFCC frame

    rng = np.random.default_rng(0)
    base = rng.standard_normal((60, 2)) * 10
    crops = np.zeros((30, 224, 224, 3), np.float32)
    crops[:, 0, :2, 2] = base[3:33]         # channel 2 becomes channel 0 after RGB -> BGR
    network = Shifted(TINY)
    audio = np.zeros(30 * 640, np.float32)
    from metrics import lipsync
    original = lipsync.mfcc
    try:
        lipsync.mfcc = lambda samples: np.repeat(np.pad(base[:30], ((0, 0), (0, 11))), 4, axis=0)
        result = sync_offsets(network, crops, audio, vshift=5)
    finally:
        lipsync.mfcc = original
    assert result.offset == -3
    # At k = +3 only the last 3 of 25 windows meet the zero padding: |v_i + 1e-6| for i = 22..24.
    expected = sum(np.linalg.norm(base[3 + i].astype(np.float32) + 1e-6) for i in (22, 23, 24)) / 25
    assert abs(result.min_distance - expected) < 1e-4
    assert abs(result.confidence - (np.sort(result.mean_distances)[5] - result.min_distance)) < 1e-12


def _face(x0, y0, size, confidence=5.0):
    return Face(float(x0), float(y0), float(x0 + size), float(y0 + size), confidence)


def test_face_tracks_interpolate_gaps_and_drop_short_or_small_tracks():
    settings = LipSyncSettings(min_track=12, min_face_size=20, max_missed=3)
    detections = [[_face(10 + n, 20, 40)] if n % 4 else [] for n in range(40)]   # every 4th frame missed
    detections[5].append(_face(150, 150, 40))                                     # a lone second face
    tracks = face_tracks(detections, settings)
    assert len(tracks) == 1
    track = tracks[0]
    assert track.first == 1 and len(track.boxes) == 39 and track.detections == 30
    np.testing.assert_allclose(track.boxes[:, 0], 10 + np.arange(1, 40))        # x0 interpolated linearly
    assert face_tracks(detections, LipSyncSettings(min_track=30, max_missed=3)) == []       # 30 detections: not more
    assert face_tracks(detections, LipSyncSettings(min_track=12, min_face_size=40, max_missed=3)) == []
    # A gap longer than max_missed ends the track; the rest becomes a second one.
    gap = [[_face(10, 20, 40)] for _ in range(15)] + [[] for _ in range(5)] + [[_face(10, 20, 40)] for _ in range(15)]
    assert [len(t.boxes) for t in face_tracks(gap, LipSyncSettings(min_track=12, min_face_size=20, max_missed=3))] == [15, 15]
    # A face that jumps (IoU <= 0.5) starts another track.
    jump = [[_face(10, 20, 40)] for _ in range(15)] + [[_face(100, 20, 40)] for _ in range(15)]
    assert [t.first for t in face_tracks(jump, LipSyncSettings(min_track=12, min_face_size=20))] == [0, 15]


def test_crop_follows_run_pipeline_crop_video():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (20, 90, 120, 3), dtype=np.uint8)
    detections = [[_face(40, 20, 30)] for _ in range(20)]
    track = face_tracks(detections, LipSyncSettings(min_track=12, min_face_size=10))[0]
    crops = crop_track(frames, track)
    assert crops.shape == (20, 224, 224, 3)
    # By hand for frame 10 (medians of constant series are the values): s = 15, centre (55, 35),
    # pad int(15 * 1.8) = 27; rows 35 + 27 - 15 .. 35 + 27 + 27, columns 55 + 27 - 21 .. 55 + 27 + 21.
    import cv2
    padded = np.pad(frames[10], ((27, 27), (27, 27), (0, 0)), constant_values=110)
    np.testing.assert_array_equal(crops[10], cv2.resize(padded[47:89, 61:103], (224, 224)))
    # Near the frame's edge the crop reaches into the grey padding (110).
    edge = [[_face(0, 0, 30)] for _ in range(20)]
    crops = crop_track(frames, face_tracks(edge, LipSyncSettings(min_track=12, min_face_size=10))[0])
    assert (crops[10, :5, :5] == 110).all()


def test_to_video_rate():
    frames = np.arange(50)[:, None]
    assert to_video_rate(frames, 25) is frames
    np.testing.assert_array_equal(to_video_rate(frames, 50)[:5, 0], [0, 2, 4, 6, 8])
    assert len(to_video_rate(frames, 50)) == 25
    np.testing.assert_array_equal(to_video_rate(np.arange(30)[:, None], 30)[:6, 0], [0, 1, 2, 4, 5, 6])


def _scene(frames: np.ndarray, size: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """The parity face pasted at (40, 30) into bigger frames; boxes of its face ellipse."""
    out = np.full((len(frames), size, size, 3), 30, np.uint8)
    out[:, 30:254, 40:264] = frames
    boxes = np.tile([40 + 42.0, 30 + 12.0, 40 + 182.0, 30 + 196.0], (len(frames), 1))
    return out, boxes


def test_clip_with_given_boxes_and_without_faces():
    frames, audio = parity_clip()
    scene, boxes = _scene(frames)
    network = SyncNet(TINY).eval()
    record = lip_sync_clip(scene, 25, audio, network, face_boxes=boxes, settings=TOY_SETTINGS)
    assert record.failure is None and record.tracks == 1 and record.face_source == "given boxes"
    assert record.frames == 30 and record.frames_with_face == 30 and record.detection_failures == 0
    # The same crops passed straight to the offset search give the same numbers.
    from metrics.lipsync import FaceTrack
    crops = crop_track(scene, FaceTrack(0, boxes, 30), TOY_SETTINGS)
    direct = sync_offsets(network, crops, audio)
    assert (record.min_distance, record.confidence, record.offset) == (direct.min_distance, direct.confidence,
                                                                       direct.offset)

    class NoFaces:
        name, default_confidence = "none", 0.0

        def __call__(self, frame):
            return []

    empty = lip_sync_clip(scene, 25, audio, network, detector=NoFaces(), settings=TOY_SETTINGS)
    assert empty.failure == "no face track" and math.isnan(empty.confidence)
    assert empty.detection_failures == 30 and empty.tracks == 0
    with pytest.raises(ValueError, match="uint8"):
        lip_sync_clip(scene.astype(np.float32), 25, audio, network, face_boxes=boxes)


def test_reduce_over_clips():
    records = [LipSyncRecord(7.0, 3.0, 1, 100, 90, 1), LipSyncRecord(9.0, 1.0, 1, 100, 100, 1),
               LipSyncRecord(8.0, 5.0, -2, 50, 50, 1),
               LipSyncRecord(math.nan, math.nan, 0, 80, 3, 0, "no face track")]
    summary = reduce_lip_sync(records)
    assert summary.sync_c == 3.0 and summary.sync_d == 8.0
    assert (summary.clips, summary.scored) == (4, 3)
    assert summary.failures == {"no face track": 1}
    assert summary.detection_failures == 10 + 77
    assert summary.offsets == {-2: 1, 1: 2}


def test_hook_needs_weights_and_stars_a_standin(tmp_path):
    class Protocol:
        interval_half_samples, bootstrap_seed, confidence = 0, 0, 0.95
        lipsync_min_track = 24
        lipsync_min_face_size = 12.0
        lipsync_face_confidence = 0.0

    with pytest.raises(MissingWeights, match="--weights syncnet=PATH"):
        LipSyncConfidence(Protocol())
    path = tmp_path / "standin.model"
    save_syncnet(SyncNet(TINY), path)
    metric = LipSyncDistance(Protocol(), weights=str(path))
    assert metric.pretrained is False and metric.label == "Sync-D*"
    assert metric.weights_id.startswith("syncnet-standin:")
    assert metric.settings.min_track == 24 and metric.settings.vshift == 15
    frames, audio = parity_clip()
    with pytest.raises(ValueError, match="clip.mp4: lip sync needs 16 kHz"):
        metric.clip(ClipInputs("clip.mp4", "fake", 25.0, (224, 224), frames=frames, audio=audio, sample_rate=22050))
    values = [ClipValues("a", "a0", {"distance": np.float64(6.0)}), ClipValues("a", "a1", {"distance": np.float64(8.0)})]
    assert metric.reduce([], values).compute() == 7.0
