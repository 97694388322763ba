"""Tests for gan_arith/data/faces.py: MTCNN's box and keypoints on a real photo, the square crop and its resizing."""

import copy

import numpy as np
import skimage.data
from PIL import Image

from gan_arith.data import faces

ASTRONAUT_BOX = np.array([182, 64, 83, 107])


def test_astronaut_box(detector):
    [found] = detector.detect([skimage.data.astronaut()])
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box, ASTRONAUT_BOX, atol=3)
    assert found[0].confidence > 0.99
    left_eye, right_eye, nose = found[0].keypoints[:3]
    assert left_eye[0] < nose[0] < right_eye[0] and nose[1] > left_eye[1]


def test_large_images_are_detected_downscaled_and_mapped_back(detector):
    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1024, 1024)))
    halved = np.asarray(Image.fromarray(photo).resize((512, 512), Image.Resampling.BILINEAR))
    capped = copy.copy(detector)  # the same network, detecting on copies at most 512 pixels long
    capped.max_detect_side = 512
    [[face]], [[half]] = capped.detect([photo]), detector.detect([halved])
    np.testing.assert_allclose(face.box, 2 * np.array(half.box), atol=2)  # 2x, up to rounding
    np.testing.assert_allclose(face.keypoints, 2 * half.keypoints, atol=1)
    assert face.confidence == half.confidence


def test_square_crop():
    # A tall box is widened around its centre; a box at the border is shifted inside.
    assert faces.square_crop((40, 10, 20, 40), 100, 100) == (30.0, 10.0, 70.0, 50.0)
    assert faces.square_crop((0, 0, 20, 40), 100, 100) == (0.0, 0.0, 40.0, 40.0)
    assert faces.square_crop((90, 80, 10, 20), 100, 100, margin=1.5) == (70.0, 70.0, 100.0, 100.0)
    # Never larger than the image's shorter side.
    assert faces.square_crop((0, 0, 60, 90), 60, 100) == (0.0, 15.0, 60.0, 75.0)


def test_crops_are_centred_faces(detector):
    photo = skimage.data.astronaut()
    [[face]] = detector.detect([photo])
    crops = faces.crop_face(photo, face, (40, 24), margin=1.0)
    assert {s: c.shape for s, c in crops.items()} == {40: (40, 40, 3), 24: (24, 24, 3)}
    # Keypoints mapped into the 40 x 40 crop: eyes in the upper half, nose near the middle.
    left, top, right, bottom = faces.square_crop(face.box, 512, 512)
    kp = (face.keypoints - [left, top]) * 40 / (right - left)
    assert (kp[:2, 1] < 20).all() and 14 < kp[2, 0] < 26 and 14 < kp[2, 1] < 30
    # The crop is the resized square of the photo (compare with an independent crop, then resize).
    square = Image.fromarray(photo).crop(tuple(round(v) for v in (left, top, right, bottom)))
    expected = np.asarray(square.resize((40, 40), Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(crops[40].astype(int) - expected).mean() < 3
