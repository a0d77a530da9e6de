"""CIReVL's targetpad runs torchvision's CenterCrop, which places the crop at round((h - crop) / 2) with Python's
round (halves to even); CLIPImageProcessor floors. torchvision is not installed here, so the rule is computed
by hand: a 32 x 35 image needs no resize, and the crop of a 3-pixel excess starts at row round(1.5) = 2."""

import numpy as np
from PIL import Image

from cirkit.encoders.clip_image import ImagePrep, preprocess


def rows_image(width, height):
    """Row r is grey level 7 * r, so the first row of a crop names where it starts."""
    arr = np.repeat((np.arange(height, dtype=np.uint8) * 7)[:, None], width, axis=1)
    return Image.fromarray(np.stack([arr] * 3, axis=-1))


def first_row(out, prep):
    level = out[0, 0, 0] * prep.std[0] + prep.mean[0]
    return int(round(level * 255 / 7))


def test_targetpad_centre_crop_rounds_like_torchvision():
    for height, torchvision_top, floor_top in ((35, 2, 1), (33, 0, 0), (37, 2, 2), (39, 4, 3)):
        image = rows_image(32, height)
        targetpad = ImagePrep(32, 32, mode="targetpad", target_ratio=1.25)
        assert first_row(preprocess(image, targetpad), targetpad) == torchvision_top, height
        clip = ImagePrep(32, 32)
        assert first_row(preprocess(image, clip), clip) == floor_top, "CLIPImageProcessor floors"
