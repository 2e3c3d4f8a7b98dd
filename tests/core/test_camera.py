import numpy as np

from perse.core.camera import Camera, head_pose_viewmat, project, unproject


def test_crop_spans_unit_square_at_face_plane():
    camera = Camera.frontal(512, 14.0)
    corners = np.array([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    uv = project(corners, camera.viewmat, camera.K)[:, :2]
    assert np.allclose(uv, [[0, 0], [512, 512]])


def test_unproject_inverts_project():
    viewmat = head_pose_viewmat(14.0, yaw_deg=20, pitch_deg=-10)
    K = Camera.frontal(64, 14.0).K
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
    projected = project(points, viewmat, K)
    assert np.allclose(unproject(projected[:, :2], projected[:, 2], viewmat, K), points)


def test_positive_yaw_moves_the_nose_left():
    nose = np.array([[0.0, 0.0, -0.3]])
    K = Camera.frontal(64, 14.0).K
    u_front = project(nose, head_pose_viewmat(14.0), K)[0, 0]
    u_yaw = project(nose, head_pose_viewmat(14.0, yaw_deg=20), K)[0, 0]
    assert u_yaw < u_front - 1
