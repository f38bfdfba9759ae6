"""Garment localisation on a real person photo (scikit-image's astronaut) and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from firs.errors import FirsError
from firs.vision.crops import mask_box
from firs.vision.localiser import GarmentLocaliser


@pytest.fixture(scope="module")
def localiser() -> GarmentLocaliser:
    return GarmentLocaliser()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def test_astronaut_upper_body_in_the_right_place(localiser: GarmentLocaliser, astronaut: Image.Image) -> None:
    result = localiser.locate(astronaut)
    assert result.fallback is None
    (item,) = result.items
    assert item.region.name == "upper"
    x0, y0, x1, y1 = item.region.box
    # The suit covers the lower half of the 512x512 picture; the face is at about (220, 130).
    assert 140 < y0 < 260 and y1 >= 480 and x0 < 120 and x1 > 300
    assert item.mask is not None and item.mask.shape == (512, 512)
    face = item.mask[60:200, 170:280]
    assert face.mean() < 0.05  # the face is cut out
    suit = item.mask[330:480, 150:330]
    assert suit.mean() > 0.5
    assert item.view.size[0] <= (x1 - x0) * 1.1 and item.view.size[1] <= 512  # the cut-out, with a margin


def test_partial_view_has_no_lower_body(localiser: GarmentLocaliser, astronaut: Image.Image) -> None:
    with pytest.raises(FirsError, match="region 'lower' not found"):
        localiser.locate(astronaut, region="lower")
    assert localiser.locate(astronaut, region="lower", strict=False).items[0].region.name == "upper"


def test_rotated_photo_is_found(localiser: GarmentLocaliser, astronaut: Image.Image) -> None:
    upright = localiser.locate(astronaut).items[0].region.box
    turned = astronaut.rotate(90, expand=True)  # on its side: the head points left
    result = localiser.locate(turned)
    assert result.fallback is None
    x0, y0, x1, y1 = result.items[0].region.box
    # Turning maps (x, y) to (y, 511 - x): the suit now lies on the right half.
    expected = (upright[1], 512 - upright[2], upright[3], 512 - upright[0])
    assert all(abs(a - b) <= 40 for a, b in zip((x0, y0, x1, y1), expected, strict=True))


def test_no_person_falls_back_to_the_salient_object(localiser: GarmentLocaliser) -> None:
    image = Image.new("RGB", (320, 240), (250, 250, 250))
    ImageDraw.Draw(image).rectangle([180, 60, 260, 200], fill=(30, 90, 200))
    result = localiser.locate(image)
    assert "no person" in (result.fallback or "")
    (item,) = result.items
    assert item.region.name == "object"
    x0, y0, x1, y1 = item.region.box
    assert abs(x0 - 180) <= 3 and abs(y0 - 60) <= 3 and abs(x1 - 261) <= 3 and abs(y1 - 201) <= 3


def test_nothing_distinct_falls_back_to_the_whole_image(localiser: GarmentLocaliser) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    result = localiser.locate(Image.fromarray(noise))
    assert "whole image" in (result.fallback or "")
    assert result.items[0].region.box == (0, 0, 200, 200)


def test_product_shots_are_told_from_worn_pictures_before_the_pose_model(astronaut: Image.Image) -> None:
    from firs.demo.garments import catalogue_specs, draw_garment
    from firs.vision.product_shot import is_product_shot

    specs = catalogue_specs()[:12]
    shots = [draw_garment(spec) for spec in specs if spec.colour in ("navy", "green")]
    assert len(shots) == 8 and all(is_product_shot(shot) for shot in shots)
    # Garments in skin-like colours are left to the pose model: slower, never cut wrongly.
    assert not any(is_product_shot(draw_garment(spec)) for spec in specs if spec.colour == "yellow")
    assert is_product_shot(shots[0].resize((3000, 4000)))  # a big catalogue picture is checked small
    assert not is_product_shot(astronaut)  # a person: skin, and no flat backdrop
    on_white = Image.new("RGB", (300, 400), "white")
    ImageDraw.Draw(on_white).ellipse((100, 20, 200, 140), fill=(224, 172, 140))  # a face on white
    assert not is_product_shot(on_white)
    gradient = Image.fromarray(np.tile(np.linspace(120, 250, 400, dtype=np.uint8)[:, None, None], (1, 300, 3)))
    gradient.paste(shots[0].resize((150, 150)), (75, 125))
    assert not is_product_shot(gradient)  # a studio backdrop that is not flat: the pose model decides


def test_the_same_photo_gets_the_same_garment_mask_whatever_ran_before(
    localiser: GarmentLocaliser, astronaut: Image.Image
) -> None:
    import cv2

    first = localiser.locate(astronaut).items[0].mask
    samples = np.random.default_rng(1).random((200, 3), dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 5, 0)
    cv2.kmeans(samples, 3, None, criteria, 1, cv2.KMEANS_PP_CENTERS)  # moves OpenCV's random generator
    again = localiser.locate(astronaut).items[0].mask
    assert first is not None and again is not None and np.array_equal(first, again)


def test_another_region_of_the_same_photo_reuses_its_pose(astronaut: Image.Image) -> None:
    localiser = GarmentLocaliser()
    first = localiser.locate(astronaut, region="upper")
    calls = []
    estimate = localiser.estimator.estimate
    localiser.estimator.estimate = lambda rgb: calls.append(rgb) or estimate(rgb)  # type: ignore[method-assign]
    again = localiser.locate(astronaut, region="full", strict=False, again=first)
    assert not calls  # the pose model did not run a second time
    fresh = localiser.locate(astronaut, region="full", strict=False)
    assert len(calls) == 1
    assert again.items[0].region.box == fresh.items[0].region.box
    assert np.array_equal(again.items[0].mask, fresh.items[0].mask)


def test_either_resampling_finds_the_same_garment_in_a_big_photo(
    localiser: GarmentLocaliser, astronaut: Image.Image
) -> None:
    big = astronaut.resize((1500, 1500), Image.BICUBIC)  # scaled down to the working size first
    fast = localiser.locate(big).items[0]
    pillow = GarmentLocaliser(localiser.estimator, resample="pil-bilinear").locate(big).items[0]
    assert fast.region.name == pillow.region.name == "upper"
    boxes = np.array([fast.region.box, pillow.region.box], float)
    inner = np.r_[boxes[:, :2].max(axis=0), boxes[:, 2:].min(axis=0)]
    overlap = np.prod(np.clip(inner[2:] - inner[:2], 0, None))
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    assert overlap / (areas.sum() - overlap) > 0.95  # boxes in the big photo's pixels, nearly equal
    assert fast.mask is not None and pillow.mask is not None and fast.mask.shape == (1500, 1500)
    assert (fast.mask & pillow.mask).sum() / (fast.mask | pillow.mask).sum() > 0.9
    with pytest.raises(FirsError, match="unknown resampling"):
        GarmentLocaliser(localiser.estimator, resample="nearest")


def test_mask_box_is_the_box_of_the_masks_pixels() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = rng.integers(1, 60, 2)
        mask = rng.random((height, width)) < rng.choice([0.0, 0.002, 0.05, 0.5])
        ys, xs = np.nonzero(mask)
        for margin in (0.0, 0.04, 0.5):
            if not len(xs):
                assert mask_box(mask, margin) is None
                continue
            pad_x, pad_y = int((np.ptp(xs) + 1) * margin), int((np.ptp(ys) + 1) * margin)
            want = (
                max(0, xs.min() - pad_x),
                max(0, ys.min() - pad_y),
                min(width, xs.max() + 1 + pad_x),
                min(height, ys.max() + 1 + pad_y),
            )
            assert mask_box(mask, margin) == want


def test_the_garment_mask_depends_only_on_the_pixels_around_the_person(localiser: GarmentLocaliser) -> None:
    """The mask is worked out in a window around the person: the same person in a bigger photo
    (landmarks and masks shifted with it) gets the same mask, wherever the window starts."""
    from firs.vision.garment_mask import garment_mask
    from firs.vision.pose import Pose
    from firs.vision.regions import Region, body_regions

    person = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.BICUBIC))
    canvas = np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    canvas[150:406, 100:356] = person
    pose = localiser.estimator.estimate(canvas)
    assert pose is not None
    top, left = 110, 70  # a crop holding the person and the margin GrabCut looks at
    crop = (slice(top, 440), slice(left, 400))
    moved = Pose(pose.points - np.array([left, top], np.float32), pose.visibility, pose.mask[crop])
    for region in body_regions(pose, canvas.shape[:2]):
        x0, y0, x1, y1 = region.box
        inside = Region(region.name, (x0 - left, y0 - top, x1 - left, y1 - top), region.mask[crop], region.score)
        whole = garment_mask(canvas, pose, region, grabcut=True)
        assert whole.any() and not whole[: top + 1].any() and not whole[:, : left + 1].any()
        assert np.array_equal(
            garment_mask(np.ascontiguousarray(canvas[crop]), moved, inside, grabcut=True), whole[crop]
        )


def test_a_person_far_off_in_a_big_photo_is_cut_out_at_a_larger_size(
    localiser: GarmentLocaliser, astronaut: Image.Image
) -> None:
    photo = Image.new("RGB", (2048, 1536), (120, 140, 110))
    photo.paste(astronaut.resize((400, 400)), (1300, 800))  # ~95 px tall at the 480 px working size
    plain, closer = localiser.locate(photo), localiser.locate(photo, closer=True)
    assert plain.picture is not None and closer.picture is not None
    assert max(plain.picture.shape) == localiser.work_side < max(closer.picture.shape) <= 960
    (far,), (near,) = plain.items, closer.items
    assert near.view.width > far.view.width * 1.5  # the garment has more of its own pixels
    # Boxes and masks are in the pixels of the photo passed in, either way.
    assert all(abs(a - b) <= 12 for a, b in zip(far.region.box, near.region.box, strict=True))
    assert near.mask is not None and near.mask.shape == (1536, 2048)
    # A person tall enough at the working size is cut out there.
    found = localiser.locate(astronaut, closer=True)
    assert found.picture is not None and found.picture.shape[:2] == (480, 480)
