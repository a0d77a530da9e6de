"""Small JPEG thumbnails of gallery and reference images, cached per image like embeddings: a report of a
123k-image gallery stores and embeds only the few dozen images it shows, and a second report reuses them."""

from __future__ import annotations

import dataclasses
import io
import os

from ..data.model import ImageRef
from ..engine import Engine, stage

__all__ = ["ThumbnailConfig", "thumbnails", "thumbnail_map"]


@dataclasses.dataclass(frozen=True)
class ThumbnailConfig:
    size: int = 96  # the longer side, in pixels
    quality: int = 80  # JPEG quality


def thumbnail_identity(image: ImageRef) -> tuple:
    """A thumbnail depends on the file's content (its path only if it was not hashed) and the crop box."""
    return (image.content or image.path, image.box)


@stage(version=1, over="images", shard_size=64, item_key=thumbnail_identity)
def thumbnails(config: ThumbnailConfig, images: tuple[ImageRef, ...]) -> tuple[bytes, ...]:
    """One JPEG per image, the longer side ``size`` pixels (crop boxes applied first)."""
    from PIL import Image

    out = []
    for ref in images:
        with Image.open(ref.path) as im:
            im = im.convert("RGB")
            if ref.box is not None:
                im = im.crop(tuple(int(round(v)) for v in ref.box))
            im.thumbnail((config.size, config.size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=config.quality)
        out.append(buf.getvalue())
    return tuple(out)


def thumbnail_map(engine: Engine, refs: list[ImageRef], config: ThumbnailConfig = ThumbnailConfig()) -> dict[str, bytes]:
    """Image id -> JPEG for the refs whose files exist (a moved dataset gives placeholders, not an error)."""
    unique = {r.id: r for r in refs if r.path and os.path.isfile(r.path)}
    if not unique:
        return {}
    items = tuple(sorted(unique.values(), key=lambda r: r.id))
    jpegs = engine.run(thumbnails, config, images=items, step="report/thumbnails").value
    return {r.id: j for r, j in zip(items, jpegs, strict=True)}
