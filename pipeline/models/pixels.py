"""Images as uint8 from decode to the device; float conversion and normalisation there, batched.

Every family's processor splits its image transform in two:

- the host part, `Processor.image(PIL image) -> uint8 [3, S, S]`: the geometry (padding, resize, crop)
  on the decoded uint8 image, in DataLoader workers; nothing float, so a worker's cost is the decode
  (and a resize only when the stored image is not at the model's input size: see `passes_through`);
- the device part, `Processor.normalize(uint8 [B, 3, S, S]) -> float32 [B, 3, S, S]`: x / 255, then
  (x - mean) / std per channel, on whatever device the batch is on, once per batch.

The two parts compute exactly what torchvision's ToTensor + Normalize computed on each PIL image (the
same float32 operations in the same order), so the float path they replace is matched to the last bit
on the CPU. `to_model_inputs` is the one place callers (training step, evaluation, feature building,
the retriever) turn a batch's uint8 images into the model's float inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGE_KEYS = ("query_image", "target_image", "image")  # the batch keys that carry images


def to_uint8(image: Image.Image | np.ndarray) -> torch.Tensor:
    """An RGB PIL image or an [H, W, 3] uint8 array -> uint8 tensor [3, H, W] (a view where it can)."""
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] uint8 image, got {array.dtype} {list(array.shape)}")
    if not array.flags.writeable:  # PIL's buffer: torch wants writable memory behind a tensor
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [B, 3, H, W] (or [3, H, W]) -> float32 (x / 255 - mean) / std, on the images' device."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize takes uint8 images (the processor's host output), got {images.dtype}")
    shape = (3, 1, 1)
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(shape)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(shape)
    # a batch stacked channels-last (stack_images) becomes contiguous here, on the device
    return images.to(torch.float32, memory_format=torch.contiguous_format).div(255).sub(m).div(s)


def worker_uint8(*shape: int) -> torch.Tensor:
    """An uninitialised uint8 tensor, in shared memory inside a DataLoader worker: what a worker fills
    for its batch then reaches the training process without the copy into shared memory the worker
    queue would make (what default_collate does too)."""
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def batch_buffer(count: int, height: int, width: int) -> torch.Tensor:
    """An uninitialised uint8 [count, height, width, 3] batch for decoders to write images into
    (`worker_uint8`: in shared memory inside a DataLoader worker)."""
    return worker_uint8(count, height, width, 3)


def stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """uint8 [3, H, W] images -> [B, 3, H, W], copied in the [H, W, 3] order decoders write (one
    memcpy per image instead of a strided gather: 4x faster at 384 px). The batch has channels-last
    strides; `normalize` makes the float batch contiguous on the device."""
    return torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)


def to_model_inputs(
    batch: dict[str, Any], processor: Any, device: str | torch.device, dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """The batch on `device`: uint8 images (or JPEG bytes, decoded there: data.decode=device) normalised
    there by the processor (then cast to `dtype` when given, e.g. bf16), other floating tensors cast to
    `dtype`, integer tensors moved as they are."""
    from coir.pipeline.device_decode import JpegBatch  # imports pipeline.decode, which imports this module

    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, JpegBatch):  # data.decode=device: JPEG bytes, decoded here
            value = value.decode(device)
        if not isinstance(value, torch.Tensor):
            out[key] = value
            continue
        value = value.to(device, non_blocking=True)
        if key in IMAGE_KEYS and value.dtype == torch.uint8:
            value = processor.normalize(value)
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value
    return out


def square_passes_through(image_size: int, width: int, height: int) -> bool:
    """Whether a square geometry of side `image_size` leaves a width x height image as it is."""
    return width == height == image_size
