"""Finding the garment in a photo: pose regions, then fallbacks, then a garment cut-out.

With a person: BlazePose landmarks give body regions (upper, lower, full, feet) and the
garment mask (vision/garment_mask.py) cuts the garment out of the region. No person: the
most salient object on a flat backdrop; failing that, the whole image. The answer says
which of these happened. A photo turned on its side is tried at 90 and 270 degrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from ..errors import QueryError
from .crops import masked_on_white, salient_box
from .garment_mask import garment_mask
from .pose import LEFT_SHOULDER, RIGHT_SHOULDER, Pose, PoseEstimator
from .regions import REGIONS, Region, body_regions
from .resample import RESAMPLE, check_resample, fitted, resized

AUTO_ORDER = ("upper", "full", "lower", "feet")
# Long side, in pixels, at which people are located and garments cut out. A garment is a part of
# the photo: at 384 px a street photo's top was cut out at ~60 x 80 px (median) for a 224 px input,
# and street fine R@1 read .471 against .494 at 480 (448-640 all .485-.494; 320 .423), for
# ~0.3 ms more a search (docs/architecture.md, "The working size").
WORK_SIDE = 480
# With `closer`, a person shorter than this at the working size is cut out of the photo at a larger
# size, up to CLOSER_SIDE on its long side: people seen from further off (docs/architecture.md,
# "The working size"). The pose itself needs no more: its networks see 224 and 256 px.
MIN_PERSON_HEIGHT = 224
CLOSER_SIDE = 960
REGION_CHOICES = ("auto", *REGIONS)


@dataclass
class Located:
    """One garment found in a photo: its region (box in the photo's pixels), the mask (at the
    working size) and the cut-out to embed."""

    region: Region
    view: Image.Image
    mask: np.ndarray | None = None


@dataclass
class Localisation:
    items: list[Located] = field(default_factory=list)
    fallback: str | None = None  # why no person region was used, if none was
    detect_ms: float = 0.0
    segment_ms: float = 0.0
    found: list[str] = field(default_factory=list)  # every body region the pose showed
    pose: Pose | None = None  # on `picture`: another region of the same photo reuses both
    picture: np.ndarray | None = None  # the RGB the garments were cut out of


def _rotate_points(points: np.ndarray, turns: int, size: tuple[int, int]) -> np.ndarray:
    """Map points found in an image turned `turns` x 90 degrees counter-clockwise back."""
    width, height = size  # of the original image
    out = points.copy()
    if turns == 1:  # rotated CCW: (x', y') = (y, W - 1 - x)
        out[:, 0], out[:, 1] = width - 1 - points[:, 1], points[:, 0]
    elif turns == 3:  # rotated CW: (x', y') = (H - 1 - y, x)
        out[:, 0], out[:, 1] = points[:, 1], height - 1 - points[:, 0]
    return out


class GarmentLocaliser:
    """Pose model loaded once; callable from any thread. `threads`, `streams`: the pose networks'
    (compiled_net.CompiledPiece); `resample`: how a photo is scaled to the working size (the index's);
    `work_side`: the working size."""

    def __init__(
        self,
        estimator: PoseEstimator | None = None,
        grabcut: bool = True,
        threads: int | None = None,
        streams: int = 1,
        resample: str = RESAMPLE,
        work_side: int = WORK_SIDE,
    ) -> None:
        check_resample(resample)
        self.estimator = estimator or PoseEstimator(threads, streams)
        self.grabcut, self.resample, self.work_side = grabcut, resample, work_side
        cv2.setNumThreads(1)  # small images: OpenCV's thread pool only adds waiting

    def pose(self, rgb: np.ndarray, upright: bool = False) -> Pose | None:
        """The pose, trying the photo upright, then (unless it is known to be upright) turned either way."""
        pose = self.estimator.estimate(rgb)
        if upright or (pose is not None and pose.visible(LEFT_SHOULDER, RIGHT_SHOULDER)):
            return pose
        size = (rgb.shape[1], rgb.shape[0])
        for turns in (1, 3):
            turned = np.ascontiguousarray(np.rot90(rgb, turns))
            found = self.estimator.estimate(turned)
            if found is not None and found.visible(LEFT_SHOULDER, RIGHT_SHOULDER):
                mask = np.rot90(found.mask, -turns)
                return Pose(_rotate_points(found.points, turns, size), found.visibility, np.ascontiguousarray(mask))
        return pose

    def _closer(self, image: Image.Image, rgb: np.ndarray, pose: Pose) -> tuple[np.ndarray, Pose]:
        """Where the person is under MIN_PERSON_HEIGHT px tall in `rgb` (`image` at the working size),
        `image` at the size that makes them that tall (at most CLOSER_SIDE or its own) and the pose
        scaled to it. Their height is the person mask's longer extent: a photo may lie on its side."""
        _, _, width, height = cv2.boundingRect((pose.mask > 0.5).view(np.uint8))
        tall = max(width, height)
        if not tall or tall >= MIN_PERSON_HEIGHT:
            return rgb, pose
        side = max(rgb.shape[:2])
        wanted = min(CLOSER_SIDE, max(image.size), round(side * MIN_PERSON_HEIGHT / tall))
        if wanted <= side:  # the photo holds no more pixels
            return rgb, pose
        bigger = self._at_most(image, wanted)
        return bigger, pose.scaled(bigger.shape[1], bigger.shape[0])

    def _at_most(self, image: Image.Image, side: int) -> np.ndarray:
        """`image`'s RGB pixels, scaled down to `side` px on its long side where it is longer."""
        if max(image.size) > side:
            return resized(image, *fitted(image.size, side), self.resample)
        return np.asarray(image)

    def locate(
        self,
        image: Image.Image,
        region: str = "auto",
        all_items: bool = False,
        strict: bool = True,
        upright: bool = False,
        again: Localisation | None = None,
        closer: bool = False,
    ) -> Localisation:
        """The garment(s) to search for: one (the chosen region) or all regions found; boxes and
        masks in `image`'s pixels.

        A named region that is not in the photo is an error, or with strict=False the
        automatic choice. `upright`: the picture is not on its side (a catalogue's), so it
        is not tried turned. `again`: this photo's earlier localisation, whose pose and picture
        are reused. `closer`: a person small at the working size is cut out of `image` at a
        larger size (at most CLOSER_SIDE; `image` should have it).
        """
        if region not in REGION_CHOICES:
            raise QueryError(f"unknown region {region!r}; choose one of {', '.join(REGION_CHOICES)}")
        start = time.perf_counter()
        original_size = image.size
        if again is not None and again.picture is not None:
            rgb, pose = again.picture, again.pose
        else:
            rgb = self._at_most(image, self.work_side)  # masks at the working size; GrabCut at its own, smaller one
            pose = self.pose(rgb, upright)
            if pose is not None and closer:
                rgb, pose = self._closer(image, rgb, pose)
        if rgb.shape[:2] != (image.height, image.width):
            image = Image.fromarray(rgb)
        regions = body_regions(pose, rgb.shape[:2]) if pose is not None else []
        detected = time.perf_counter()
        result = Localisation(found=[r.name for r in regions], pose=pose, picture=rgb)
        if regions:
            by_name = {r.name: r for r in regions}
            if all_items:
                chosen = [by_name[name] for name in AUTO_ORDER if name in by_name and name != "full"] or regions
            elif region in by_name:
                chosen = [by_name[region]]
            elif region == "auto" or not strict:
                chosen = [next(by_name[name] for name in AUTO_ORDER if name in by_name)]
            else:
                found = ", ".join(by_name)
                raise QueryError(f"region {region!r} not found in the photo (found: {found})")
            for item in chosen:
                mask = garment_mask(rgb, pose, item, grabcut=self.grabcut)
                if mask.sum() < 50:  # the colour classes ate everything: use the body region
                    mask = item.mask & (pose.mask > 0.5)
                result.items.append(Located(item, masked_on_white(rgb, mask), mask))
        else:
            box = salient_box(rgb)
            if box is not None:
                result.fallback = "no person found: searched the most salient object"
                item = Region("object", box, np.zeros(rgb.shape[:2], bool), 0.5)
                result.items.append(Located(item, image.crop(box)))
            else:
                result.fallback = "no person or distinct object found: searched the whole image"
                height, width = rgb.shape[:2]
                item = Region("image", (0, 0, width, height), np.ones((height, width), bool), 0.0)
                result.items.append(Located(item, image))
        if image.size != original_size:
            scale = max(image.size) / max(original_size)
            for item in result.items:
                item.region.box = tuple(round(v / scale) for v in item.region.box)
                if item.mask is not None:
                    item.mask = (
                        cv2.resize(item.mask.astype(np.uint8), original_size, interpolation=cv2.INTER_NEAREST) > 0
                    )
        end = time.perf_counter()
        result.detect_ms = round((detected - start) * 1000, 2)
        result.segment_ms = round((end - detected) * 1000, 2)
        return result
