"""BlazePose on OpenVINO: landmarks and mask land where the person is, whatever the framing,
from any number of threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from skimage import data

from firs.vision.pose import LEFT_SHOULDER, NOSE, RIGHT_SHOULDER, PoseEstimator, _anchors

FACE_POINTS = [0, 2, 5, 7, 8]  # nose, eyes, ears: the astronaut's face is whole in every framing


@pytest.fixture(scope="module")
def estimator() -> PoseEstimator:
    return PoseEstimator()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def test_the_astronaut_is_found_where_she_is(estimator: PoseEstimator, astronaut: np.ndarray) -> None:
    pose = estimator.estimate(astronaut)
    assert pose is not None
    nose = pose.points[NOSE]
    assert 190 < nose[0] < 250 and 100 < nose[1] < 160  # her face is at about (220, 130)
    assert pose.visible(NOSE, LEFT_SHOULDER, RIGHT_SHOULDER)
    # Her left shoulder is on the picture's right, both below the face.
    assert pose.points[LEFT_SHOULDER][0] > nose[0] > pose.points[RIGHT_SHOULDER][0]
    assert min(pose.points[LEFT_SHOULDER][1], pose.points[RIGHT_SHOULDER][1]) > nose[1] + 60
    assert pose.mask.shape == (512, 512) and pose.mask.dtype == np.float32
    assert pose.mask[100:160, 190:250].mean() > 0.9  # the face is person
    assert pose.mask[:80, :80].mean() < 0.1 and pose.mask[:80, 430:].mean() < 0.1  # the corners are not


@pytest.mark.parametrize("pad", [(150, 100), (40, 200)])
def test_points_follow_the_person_when_the_framing_changes(
    estimator: PoseEstimator, astronaut: np.ndarray, pad: tuple[int, int]
) -> None:
    """Landmarks come back in the photo's own pixels: pad the photo and they move with her."""
    left, top = pad
    framed = np.zeros((512 + 2 * top, 512 + 2 * left, 3), np.uint8)
    framed[top : top + 512, left : left + 512] = astronaut
    upright, moved = estimator.estimate(astronaut), estimator.estimate(framed)
    assert upright is not None and moved is not None
    shift = moved.points[FACE_POINTS] - upright.points[FACE_POINTS]
    assert np.abs(shift - [left, top]).max() < 10
    assert moved.mask.shape == framed.shape[:2]
    assert moved.mask[:top].mean() < 0.01  # the padding above her is not person


def test_mirrored_photo_mirrors_the_points(estimator: PoseEstimator, astronaut: np.ndarray) -> None:
    pose, mirrored = estimator.estimate(astronaut), estimator.estimate(np.ascontiguousarray(astronaut[:, ::-1]))
    assert pose is not None and mirrored is not None
    # Mirrored, her left shoulder is found where her right one was, reflected.
    assert abs((511 - mirrored.points[LEFT_SHOULDER][0]) - pose.points[RIGHT_SHOULDER][0]) < 20
    assert abs(mirrored.points[NOSE][1] - pose.points[NOSE][1]) < 10


def test_no_person_is_none(estimator: PoseEstimator) -> None:
    assert estimator.estimate(np.full((300, 200, 3), 255, np.uint8)) is None
    assert estimator.estimate(np.zeros((64, 640, 3), np.uint8)) is None


def test_threads_estimate_at_once_with_the_answers_of_one(estimator: PoseEstimator, astronaut: np.ndarray) -> None:
    photos = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), np.ascontiguousarray(astronaut[64:, 32:])]
    alone = [estimator.estimate(photo) for photo in photos]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(estimator.estimate, photos * 8))
    for number, pose in enumerate(together):
        expected = alone[number % len(photos)]
        assert pose is not None and expected is not None
        np.testing.assert_array_equal(pose.points, expected.points)
        np.testing.assert_array_equal(pose.mask, expected.mask)


def test_anchor_grid() -> None:
    anchors = _anchors()
    assert anchors.shape == (2254, 2)  # 28x28x2 + 14x14x2 + 7x7x6
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])
