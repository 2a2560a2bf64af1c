"""The square crop of a clip: person boxes from keypoints, masks and faces, the square box, and cropping."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.prepare.crop import (
    Box,
    crop_frame,
    crop_keypoints,
    padding,
    person_box_from_faces,
    person_box_from_keypoints,
    person_box_from_masks,
    square_crop_box,
    upscale_factor,
)

W, H = 1280, 720


def coordinate_frame(width: int = W, height: int = H) -> np.ndarray:
    """A uint8 frame whose pixel at (row y, column x) encodes x and y: (x % 256, y % 256, x // 256 + 8 * (y // 256))."""
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.stack([xs % 256, ys % 256, xs // 256 + 8 * (ys // 256)], axis=-1)
    return frame.astype(np.uint8)


def decode(pixel: np.ndarray) -> tuple[int, int]:
    """The (x, y) a pixel of :func:`coordinate_frame` came from."""
    r, g, b = (int(v) for v in pixel)
    return r + 256 * (b % 8), g + 256 * (b // 8)


# ---------------------------------------------------------------------------------- keypoints


def moving_person_keypoints(frames: int = 6, seed: int = 0) -> np.ndarray:
    """133 whole-body points of a person walking left to right, plus far-away low-score outliers."""
    rng = np.random.default_rng(seed)
    kp = np.zeros((frames, 133, 3))
    for f in range(frames):
        kp[f, :, 0] = 300 + 60 * f + rng.uniform(0, 150, 133)
        kp[f, :, 1] = 100 + rng.uniform(0, 500, 133)
        kp[f, :, 2] = rng.uniform(0.35, 1.6, 133)  # DWPose scores may exceed 1
    kp[1, 5] = (5.0, 5.0, 0.1)  # outliers with low scores
    kp[3, 120] = (1270.0, 715.0, 0.29)
    kp[4, 17] = (1200.0, 20.0, 0.0)
    return kp


def loop_box(kp: np.ndarray, threshold: float, points=None) -> tuple[float, float, float, float]:
    """min/max over confident points by a plain Python loop: the reference."""
    xs, ys = [], []
    for frame in kp:
        for k, (x, y, s) in enumerate(frame):
            if (points is None or k in points) and s >= threshold:
                xs.append(x)
                ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)


def test_keypoint_box_is_union_over_frames_without_low_score_outliers():
    kp = moving_person_keypoints()
    box = person_box_from_keypoints(kp, score_threshold=0.3)
    assert box.to_list() == pytest.approx(list(loop_box(kp, 0.3)))
    # the outliers sit outside the person: they are not in the box
    assert box.x0 > 5.0 and box.y0 > 5.0 and box.x1 < 1200.0 and box.y1 < 715.0
    # the person moves right: the box spans the first frame's left and the last frame's right
    assert box.x0 == pytest.approx(kp[0, kp[0, :, 2] >= 0.3, 0].min())
    assert box.x1 == pytest.approx(kp[-1, kp[-1, :, 2] >= 0.3, 0].max())


def test_keypoint_box_threshold_includes_scores_above_one_and_the_threshold_itself():
    kp = moving_person_keypoints()
    kp[2, 7] = (50.0, 60.0, 0.3)  # exactly at the threshold: included
    box = person_box_from_keypoints(kp, score_threshold=0.3)
    assert (box.x0, box.y0) == (50.0, 60.0)
    high = person_box_from_keypoints(kp, score_threshold=1.2)
    assert high.to_list() == pytest.approx(list(loop_box(kp, 1.2)))


def test_keypoint_box_with_a_subset_of_points():
    kp = moving_person_keypoints()
    points = list(range(0, 23))
    box = person_box_from_keypoints(kp, points=points)
    assert box.to_list() == pytest.approx(list(loop_box(kp, 0.3, set(points))))


def test_keypoint_box_none_without_confident_points():
    kp = moving_person_keypoints()
    kp[..., 2] = 0.1
    assert person_box_from_keypoints(kp) is None


@pytest.mark.parametrize("shape", [(4, 17), (4, 133, 2), (133, 3), (2, 3, 133, 3)])
def test_keypoints_of_wrong_shape_raise_naming_the_shape(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        person_box_from_keypoints(np.zeros(shape))
    with pytest.raises(ValueError, match="shape"):
        crop_keypoints(np.zeros(shape), Box(0, 0, 10, 10), 8)


# ---------------------------------------------------------------------------------- masks


def random_masks(frames: int = 5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((frames, 90, 160), dtype=bool)
    for f in range(frames):
        y0, x0 = rng.integers(5, 40), rng.integers(5, 80)
        masks[f, y0:y0 + rng.integers(5, 40), x0:x0 + rng.integers(5, 60)] = True
    masks[2] = False  # a frame without the person
    return masks


def test_mask_box_equals_nonzero_reference():
    masks = random_masks()
    _, rows, cols = np.nonzero(masks)
    expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert person_box_from_masks(masks).to_list() == expected
    assert person_box_from_masks(list(masks.astype(np.uint8) * 255)).to_list() == expected


def test_mask_box_from_a_generator_reads_masks_one_at_a_time():
    masks = random_masks()
    handed_out = []

    def stream():
        for mask in masks:
            handed_out.append(1)
            yield mask.copy()

    box = person_box_from_masks(stream())
    _, rows, cols = np.nonzero(masks)
    assert box == Box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert len(handed_out) == len(masks)


def test_single_pixel_mask_box_is_one_pixel_wide():
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[4, 7] = 1
    box = person_box_from_masks([mask])
    assert box == Box(7, 4, 8, 5) and box.width == 1 and box.height == 1


def test_empty_masks_give_none_and_mismatched_shapes_raise():
    assert person_box_from_masks(np.zeros((3, 20, 30), dtype=bool)) is None
    assert person_box_from_masks([]) is None
    with pytest.raises(ValueError, match="shape"):
        person_box_from_masks([np.ones((20, 30), bool), np.ones((20, 31), bool)])
    with pytest.raises(ValueError, match="2-D"):
        person_box_from_masks([np.ones((20, 30, 3), bool)])


# ---------------------------------------------------------------------------------- faces


def test_face_fallback_widens_the_face_and_reaches_the_frame_bottom():
    face = Box(600, 50, 680, 150)  # 80 x 100, centre top of a 1280 x 720 frame
    person = person_box_from_faces([face], W, H)
    assert person.width == pytest.approx(3 * face.width)
    assert person.centre[0] == pytest.approx(face.centre[0])
    assert person.y1 == H  # the body continues to the frame edge
    assert person.y0 == 0  # 50 - 0.6 * 100 < 0: clipped to the frame
    lower = person_box_from_faces([Box(600, 200, 680, 300)], W, H)
    assert lower.y0 == pytest.approx(200 - 0.6 * 100)


def test_face_fallback_is_clipped_to_the_frame_and_covers_several_faces():
    near_edge = person_box_from_faces([Box(1220, 100, 1270, 160)], W, H)
    assert near_edge.x1 == W and near_edge.x0 == pytest.approx(1245 - 75)
    two = person_box_from_faces([Box(100, 100, 160, 180), Box(900, 120, 980, 200)], W, H)
    assert two.x0 <= 100 and two.x1 >= 980  # never narrower than the faces themselves
    assert person_box_from_faces([], W, H) is None


# ---------------------------------------------------------------------------------- square box


def test_square_box_for_a_tall_person_in_a_landscape_frame():
    person = Box(600, 100, 700, 600)  # 100 x 500
    box = square_crop_box(person, W, H, margin=0.05)
    side = round(500 * 1.1)
    assert box.width == box.height == side
    assert abs(box.centre[0] - person.centre[0]) <= 0.5
    assert abs(box.centre[1] - person.centre[1]) <= 0.5
    assert 0 <= box.x0 and box.x1 <= W and 0 <= box.y0 and box.y1 <= H


def test_square_box_near_the_left_edge_is_shifted_not_shrunk():
    person = Box(10, 100, 110, 600)
    box = square_crop_box(person, W, H, margin=0.05)
    assert box.width == box.height == 550
    assert box.x0 == 0 and box.x1 == 550
    bottom = square_crop_box(Box(600, 300, 700, 710), W, H, margin=0.05)
    assert bottom.y1 == H and bottom.width == round(410 * 1.1)


def test_wide_person_overflows_vertically_only_by_what_the_person_needs():
    person = Box(265, 200, 1015, 500)  # 750 wide: grown by 10% each side -> 900 > 720
    box = square_crop_box(person, W, H, margin=0.1)
    # the margins give way; the person's own width (750) stays, 30 rows padded in all
    assert box.width == box.height == 750
    assert box.x0 == 265 and box.x1 == 1015
    assert box.y0 == -25 and box.y1 == 725       # centred on the person (y = 350), covering the frame
    assert padding(box, W, H) == (0, 25, 0, 5)
    frame = coordinate_frame()
    crop = crop_frame(frame, box, size=750, pad_value=17)
    assert crop.shape == (750, 750, 3) and crop.dtype == np.uint8
    assert np.all(crop[:25] == 17) and np.all(crop[745:] == 17)
    np.testing.assert_array_equal(crop[25:745], frame[:, 265:1015])


def test_a_talking_head_filling_a_small_frame_is_cropped_inside_it():
    # carphone (176 x 144): the face fallback box spans the frame's height; with margins it would
    # be a 158-pixel square reaching outside on every side (the old [-9, -23, 182, 168] was this).
    person = person_box_from_faces([Box(53, 37, 100, 97)], 176, 144)
    assert (person.y0, person.y1) == (1.0, 144.0)
    box = square_crop_box(person, 176, 144)
    assert box.width == 144 and padding(box, 176, 144) == (0, 0, 0, 0)
    assert box.x0 <= 53 and 100 <= box.x1                 # the face stays in the crop
    assert upscale_factor(box, 512) == pytest.approx(512 / 144)


def test_square_box_is_whole_pixels_deterministic_and_covers_the_grown_box():
    rng = np.random.default_rng(3)
    for _ in range(200):
        x0, y0 = rng.uniform(-50, 1000), rng.uniform(-50, 500)
        person = Box(x0, y0, x0 + rng.uniform(1, 900), y0 + rng.uniform(1, 700))
        box = square_crop_box(person, W, H)
        assert box == square_crop_box(person, W, H)
        assert all(float(v).is_integer() for v in box.to_list())
        side = box.width
        assert side == box.height
        own, grown = max(person.width, person.height), max(person.width, person.height) * 1.1
        # the margins are kept where the frame allows, the person always
        assert side >= min(grown - 0.5, max(H, own)) and side >= own
        assert side <= max(grown + 0.5, own + 1)
        for start, end, extent in ((box.x0, box.x1, W), (box.y0, box.y1, H)):
            if side <= extent:
                assert 0 <= start and end <= extent
            else:                                  # covers the frame, outside only by what it must
                assert start <= 0 and end >= extent and end - start == side
    # the box never depends on the frame's content: two different videos get the same grid
    person = Box(400.3, 120.7, 611.9, 655.2)
    box = square_crop_box(person, W, H)
    a, b = coordinate_frame(), np.full((H, W, 3), 200, np.uint8)
    assert crop_frame(a, box, 64).shape == crop_frame(b, box, 64).shape == (64, 64, 3)


# ---------------------------------------------------------------------------------- crop frame


def test_crop_frame_at_full_size_is_an_exact_slice():
    frame = coordinate_frame()
    box = Box(321, 45, 321 + 600, 45 + 600)
    crop = crop_frame(frame, box, size=600)
    np.testing.assert_array_equal(crop, frame[45:645, 321:921])
    assert decode(crop[0, 0]) == (321, 45) and decode(crop[599, 599]) == (920, 644)


def test_crop_frame_pads_on_every_side_when_the_box_is_larger_than_the_frame():
    frame = coordinate_frame(40, 30)
    crop = crop_frame(frame, Box(-5, -10, 45, 40), size=50, pad_value=255)
    np.testing.assert_array_equal(crop[10:40, 5:45], frame)
    mask = np.ones((50, 50), bool)
    mask[10:40, 5:45] = False
    assert np.all(crop[mask] == 255)


def test_crop_frame_resizes_to_the_requested_shape():
    constant = np.full((H, W, 3), (12, 130, 250), np.uint8)
    box = Box(100, 50, 700, 650)
    small = crop_frame(constant, box, size=64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    assert np.all(small == (12, 130, 250))
    large = crop_frame(constant[:100, :100], Box(10, 10, 60, 60), size=128)
    assert large.shape == (128, 128, 3) and np.all(large == (12, 130, 250))
    # shrinking a textured crop keeps its mean colour closely
    frame = coordinate_frame()
    shrunk = crop_frame(frame, Box(0, 0, 512, 512), size=128)
    assert np.abs(shrunk.mean(axis=(0, 1)) - frame[:512, :512].mean(axis=(0, 1))).max() < 1.0


def test_crop_frame_enlarging_stays_within_uint8():
    checker = ((np.indices((8, 8)).sum(axis=0) % 2) * 255).astype(np.uint8)
    frame = np.repeat(checker[..., None], 3, axis=2)
    big = crop_frame(frame, Box(0, 0, 8, 8), size=64)
    assert big.shape == (64, 64, 3) and big.dtype == np.uint8
    assert big.min() == 0 and big.max() == 255  # cubic overshoot clipped, not wrapped


def test_bad_crop_arguments_raise():
    frame = coordinate_frame(64, 48)
    box = Box(0, 0, 32, 32)
    for size in (0, -3):
        with pytest.raises(ValueError, match="size"):
            crop_frame(frame, box, size)
        with pytest.raises(ValueError, match="size"):
            crop_keypoints(np.zeros((1, 133, 3)), box, size)
    with pytest.raises(ValueError, match="square"):
        crop_frame(frame, Box(0, 0, 32, 20), 16)
    with pytest.raises(ValueError, match="whole-pixel"):
        crop_frame(frame, Box(0.5, 0, 32.5, 32), 16)
    with pytest.raises(ValueError, match="uint8"):
        crop_frame(frame.astype(np.float32), box, 16)
    with pytest.raises(ValueError, match="x0 <= x1"):
        Box(10, 0, 5, 5)


# ---------------------------------------------------------------------------------- crop keypoints


def test_crop_keypoints_maps_the_box_edges_and_keeps_scores():
    box = Box(190, -100, 1090, 800)                      # side 900 -> 512
    # the box's outer edges (pixel centres at x0 - 0.5 ...) map to the crop's outer edges
    kp = np.array([[[189.5, -100.5, 0.9], [1089.5, 799.5, 1.7], [639.5, 349.5, 0.0]]])
    out = crop_keypoints(kp, box, size=512)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    np.testing.assert_allclose(out[0, 0, :2], (-0.5, -0.5), atol=1e-4)
    np.testing.assert_allclose(out[0, 1, :2], (511.5, 511.5), atol=1e-4)
    np.testing.assert_allclose(out[0, 2, :2], (255.5, 255.5), atol=1e-4)  # score 0, transformed all the same
    np.testing.assert_array_equal(out[..., 2], kp[..., 2].astype(np.float32))


def test_a_keypoint_follows_its_pixel_through_a_halving_resize():
    # a bright 2x2 block becomes exactly one pixel when the crop is halved with INTER_AREA; the
    # block's centre, mapped, must be that pixel's coordinate
    frame = np.zeros((H, W, 3), np.uint8)
    box = Box(100, 40, 500, 440)
    a, b = 37, 101
    frame[40 + 2 * b:40 + 2 * b + 2, 100 + 2 * a:100 + 2 * a + 2] = 255
    crop = crop_frame(frame, box, size=200)
    rows, cols = np.nonzero(crop[..., 0] == 255)
    (cx, cy, _), = crop_keypoints(np.array([[[100 + 2 * a + 0.5, 40 + 2 * b + 0.5, 1.0]]]), box, 200)[0]
    assert (cols.tolist(), rows.tolist()) == ([a], [b])
    np.testing.assert_allclose((cx, cy), (a, b), atol=1e-5)


def test_a_drawn_keypoint_lands_at_its_cropped_coordinate():
    frame = np.zeros((H, W, 3), np.uint8)
    x, y = 733, 251
    frame[y, x] = 255
    box = square_crop_box(Box(600, 100, 800, 600), W, H)
    side = int(box.width)
    crop = crop_frame(frame, box, size=side)
    (cx, cy, _), = crop_keypoints(np.array([[[x, y, 1.0]]]), box, side)[0]
    rows, cols = np.nonzero(crop[..., 0])
    assert (cols.tolist(), rows.tolist()) == ([cx], [cy])


def test_box_properties_and_to_list():
    box = Box(10, 20, 50, 100)
    assert (box.width, box.height, box.centre) == (40, 80, (30.0, 60.0))
    assert box.to_list() == [10.0, 20.0, 50.0, 100.0]
    assert all(type(v) is float for v in Box(np.float32(1), 2, 3, 4).to_list())


@pytest.mark.parametrize("kind", ["npz", "mp4"])
def test_masks_of_another_size_than_the_candidate_are_refused(tmp_path, kind):
    """A box found in masks of another size crops the wrong place: masks at half the candidate's size
    gave a box at half its coordinates, silently. Refused, naming the file and both sizes; masks of
    the candidate's size are read."""
    from bench.data.prepare.framing import mask_frames
    from metrics.io.video import write_video

    masks = np.zeros((6, 32, 48), bool)
    masks[:, 8:24, 10:30] = True
    path = tmp_path / f"c0.{kind}"
    if kind == "npz":
        np.savez(path, masks=masks)
    else:
        write_video(path, np.repeat(masks[..., None] * np.uint8(255), 3, axis=3), 25)
    with pytest.raises(ValueError, match=r"masks of 48x32 pixels, the candidate clip c0 is 96x64") as error:
        mask_frames(tmp_path, "c0", 6, (64, 96))
    assert str(path) in str(error.value)
    read = mask_frames(tmp_path, "c0", 6, (32, 48))
    assert len(read) == 6 and np.array_equal(np.asarray(read[0]), masks[0])
