"""The threaded decoding pipeline: same pixels as the serial path, in order, bounded, errors naming the file."""

import threading

import numpy as np
import pytest
from conftest import make_images

from cirkit.encoders import decode
from cirkit.encoders.clip_image import ImageDecodeError, ImagePrep, open_image, preprocess

PREP = ImagePrep(24, 24)


@pytest.fixture
def files(tmp_path):
    sizes = [(40, 30), (30, 50), (64, 64), (25, 25), (90, 40), (33, 47), (50, 20)]
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"im{i}.{'jpg' if i % 2 else 'png'}"
        make_images([path], size=size)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_pixels_are_identical_to_the_serial_path_and_in_order(files, workers):
    boxes = [None, (2, 3, 20, 20), None, None, (10, 0, 30, 30), None, None]
    expected = np.stack([preprocess(open_image(p, b), PREP) for p, b in zip(files, boxes)])
    batches = list(decode.pixel_batches(files, boxes, PREP, batch_size=3, workers=workers))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert np.array_equal(np.concatenate(batches), expected)


def test_a_bad_file_raises_the_error_naming_it(files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    paths = files[:4] + [str(bad)] + files[4:]
    with pytest.raises(ImageDecodeError, match="broken.jpg: cannot decode image"):
        list(decode.pixel_batches(paths, None, PREP, batch_size=2, workers=3))
    with pytest.raises(ImageDecodeError, match="missing.png: image file not found"):
        list(decode.pixel_batches([str(tmp_path / "missing.png")], None, PREP, batch_size=2, workers=2))


def test_at_most_prefetch_batches_are_decoded_ahead(files, monkeypatch):
    """Memory is bounded: the pool never runs more than ``prefetch`` batches ahead of the consumer."""
    lock, started, consumed, worst = threading.Lock(), [0], [0], [0]
    real = decode.load_pixels

    def counting(path, box, prep):
        with lock:
            started[0] += 1
            worst[0] = max(worst[0], started[0] - consumed[0])
        return real(path, box, prep)

    monkeypatch.setattr(decode, "load_pixels", counting)
    paths = files * 4  # 28 images, batches of 2
    for batch in decode.pixel_batches(paths, None, PREP, batch_size=2, workers=4, prefetch=2):
        with lock:
            consumed[0] += len(batch)
    assert started[0] == 28
    assert worst[0] <= 2 * 2 + 2, "at most prefetch batches (plus the one being refilled) ahead"


def test_mismatched_boxes_are_refused(files):
    with pytest.raises(ValueError, match="7 paths but 2 crop boxes"):
        list(decode.pixel_batches(files, [None, None], PREP, batch_size=2))
