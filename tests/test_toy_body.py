"""The toy body: forward kinematics invariants and the ground-truth keypoints."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.data.toy import body
from metrics.pose import wholebody as wb


def test_joint_layout_matches_smplx_upper_body_and_hands():
    assert body.NUM_POSE_PARAMS == 129  # 13 upper-body joints + 2 x 15 finger joints, 3 each
    assert body.POSED_JOINT_NAMES[:13] == (
        "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
    assert sum(name.startswith("left_") and name[-1].isdigit() for name in body.POSED_JOINT_NAMES) == 15
    # Parents come before children, so one pass of forward kinematics is enough.
    assert all(body.PARENTS[j] < j for j in range(1, len(body.JOINT_NAMES)))


def test_zero_pose_places_joints_at_summed_rest_offsets():
    shape = body.BodyShape(torso=1.1, arm=0.9)
    kin = body.forward_kinematics(np.zeros((1, body.NUM_POSE_PARAMS)), shape)
    offsets = body.rest_offsets(shape)
    for j, name in enumerate(body.JOINT_NAMES):
        expected, k = np.zeros(3), j
        while k > 0:
            expected += offsets[k]
            k = body.PARENTS[k]
        np.testing.assert_allclose(kin["joints"][0, j], expected, atol=1e-12, err_msg=name)


def test_bone_lengths_are_preserved_under_random_poses():
    rng = np.random.default_rng(0)
    shape = body.BodyShape()
    pose = rng.normal(0.0, 0.8, (20, body.NUM_POSE_PARAMS))
    kin = body.forward_kinematics(pose, shape)
    lengths = np.linalg.norm(body.rest_offsets(shape), axis=1)
    for j in range(1, len(body.JOINT_NAMES)):
        bone = np.linalg.norm(kin["joints"][:, j] - kin["joints"][:, body.PARENTS[j]], axis=1)
        np.testing.assert_allclose(bone, lengths[j], rtol=1e-9)


def test_shoulder_rotation_moves_the_arm_like_a_direct_rotation():
    shape = body.BodyShape()
    pose = np.zeros((1, body.NUM_POSE_PARAMS))
    k = body.POSED_JOINT_NAMES.index("left_shoulder")
    pose[0, 3 * k:3 * k + 3] = (0.0, 0.0, -np.pi / 2)  # arm straight down
    kin = body.forward_kinematics(pose, shape)
    shoulder = kin["joints"][0, body.joint_index("left_shoulder")]
    wrist = kin["joints"][0, body.joint_index("left_wrist")]
    offsets = body.rest_offsets(shape)
    arm = offsets[body.joint_index("left_elbow")] + offsets[body.joint_index("left_wrist")]
    np.testing.assert_allclose(wrist - shoulder, Rotation.from_rotvec([0, 0, -np.pi / 2]).apply(arm), atol=1e-12)
    assert wrist[1] < shoulder[1] - 0.4  # a hanging arm: the wrist is well below the shoulder


def test_forward_kinematics_rejects_wrong_pose_width():
    with pytest.raises(ValueError, match="129"):
        body.forward_kinematics(np.zeros((3, 128)), body.BodyShape())


def test_camera_projects_centre_and_scale():
    camera = body.Camera(size=128, pixels_per_metre=100.0, centre_x=0.0, centre_y=0.5)
    pts = camera.project(np.array([[0.0, 0.5, 0.3], [0.1, 0.6, 0.0]]))
    np.testing.assert_allclose(pts, [[64.0, 64.0], [74.0, 54.0]])  # x right, y down
    np.testing.assert_allclose(body.Camera(256, 100.0, 0.0, 0.5).project(np.array([0.1, 0.6, 0])), [148.0, 108.0])


def test_wholebody_keypoints_mark_what_the_toy_body_has():
    rng = np.random.default_rng(1)
    pose = rng.normal(0.0, 0.1, (5, body.NUM_POSE_PARAMS))
    for side, sign in (("left", 1.0), ("right", -1.0)):  # arms down, so the hands are in the frame
        k = body.POSED_JOINT_NAMES.index(f"{side}_shoulder")
        pose[:, 3 * k + 2] = -sign * 1.3
        k = body.POSED_JOINT_NAMES.index(f"{side}_elbow")
        pose[:, 3 * k + 1] = -sign * 1.2
    expression = np.zeros((5, body.EXPRESSION_DIM))
    camera = body.Camera(128, 118.0, centre_y=0.31)
    kp = body.wholebody_keypoints(pose, expression, body.BodyShape(), camera, hips_visible=False)
    assert kp.shape == (5, wb.NUM_KEYPOINTS, 3) and kp.dtype == np.float32
    present = kp[0, :, 2] > 0
    for name in ("nose", "left_shoulder", "right_wrist", "left_eye"):
        assert present[wb.index_of(name)], name
    for name in ("left_hip", "left_knee", "left_ear", "left_big_toe"):
        assert not present[wb.index_of(name)], name
    assert present[list(wb.LEFT_HAND)].all() and present[list(wb.RIGHT_HAND)].all()
    # The keypoint of the left wrist is the projected wrist joint.
    kin = body.forward_kinematics(pose, body.BodyShape())
    np.testing.assert_allclose(kp[:, wb.index_of("left_wrist"), :2],
                               camera.project(kin["joints"][:, body.joint_index("left_wrist")]), atol=1e-4)
    # Subject's left appears on the image's right for a frontal camera.
    assert (kp[:, wb.index_of("left_shoulder"), 0] > kp[:, wb.index_of("right_shoulder"), 0]).all()
    # The mouth opens with expression coefficient 0.
    opened = expression.copy()
    opened[:, 0] = 1.0
    kp_open = body.wholebody_keypoints(pose, opened, body.BodyShape(), camera, hips_visible=False)
    gap = lambda k: k[:, wb.FACE_LOWER_LIP_BOTTOM, 1] - k[:, wb.FACE_UPPER_LIP_TOP, 1]
    assert (gap(kp_open) > gap(kp) + 1.5).all()
