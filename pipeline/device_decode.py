"""JPEG decoding on the training device (`data.decode: device`): workers ship the bytes, the device decodes.

With `data.decode: host` (the default) DataLoader workers decode every JPEG (pipeline/decode.py) and ship
uint8 pixels. With `device`, a worker only reads each JPEG's header: a baseline JPEG of exactly the
model's input size (shards built with `coir data shards --resize square --size S`), which the processor
would pass through unchanged, is shipped as its bytes, and the training step decodes the whole batch at
once on its device with torchvision.io.decode_jpeg (nvJPEG on CUDA). Anything else (another size, PNG,
progressive or CMYK JPEG, bytes the header reader refuses) is decoded in the worker as before, into its
row of the batch, so every sample still trains.

A batch of bytes is a `JpegBatch`: the bytes of all its encoded images in one tensor (one shared-memory
block from the worker, one pinned copy), their offsets, the rows they belong to, and the host-decoded
rows' pixels. Pixels: torchvision's CPU decoder is libjpeg-turbo like simplejpeg and gives the host path's
pixels to the bit (tests/test_device_decode.py); nvJPEG's IDCT and chroma upsampling differ slightly
(benchmarks/RESULTS.md gives the difference measured on an H200). Augmentation needs the pixels in the
worker, so `data.augment` and `data.decode: device` exclude each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import simplejpeg
import torch

from coir.common.errors import CoirError

_PROGRESSIVE = b"\xff\xc2"  # SOF2: cannot occur inside entropy-coded data (0xFF is stuffed there)


def ships_as_bytes(data: bytes, size: int) -> bool:
    """Whether these bytes are a JPEG the device decodes to exactly size x size RGB."""
    if not data.startswith(b"\xff\xd8"):
        return False
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return False
    return height == width == size and colorspace in ("YCbCr", "Gray") and _PROGRESSIVE not in data


@dataclass
class JpegBatch:
    """One batch's images of one key, partly as JPEG bytes (decoded on the device), partly as pixels."""

    data: torch.Tensor  # uint8 [total bytes]: the encoded images one after another
    offsets: torch.Tensor  # int64 [k + 1]: image i is data[offsets[i]:offsets[i + 1]]
    rows: torch.Tensor  # int64 [k]: the batch row of each encoded image
    pixels: torch.Tensor | None  # uint8 [B, 3, S, S] with the other rows decoded on the host, or None
    size: int
    count: int  # rows in the batch

    @classmethod
    def of(cls, encoded: dict[int, bytes], pixels: torch.Tensor | None, size: int, count: int) -> JpegBatch:
        rows = sorted(encoded)
        lengths = torch.tensor([0] + [len(encoded[row]) for row in rows], dtype=torch.int64)
        data = torch.empty(int(lengths.sum()), dtype=torch.uint8)
        view = data.numpy()
        offsets = lengths.cumsum(0)
        for row, start in zip(rows, offsets.tolist(), strict=False):
            view[start : start + len(encoded[row])] = memoryview(encoded[row])
        return cls(data, offsets, torch.tensor(rows, dtype=torch.int64), pixels, size, count)

    def pin_memory(self) -> JpegBatch:  # the DataLoader's pin-memory thread calls this
        pixels = None if self.pixels is None else self.pixels.pin_memory()
        return JpegBatch(self.data.pin_memory(), self.offsets, self.rows, pixels, self.size, self.count)

    def decode(self, device: torch.device | str) -> torch.Tensor:
        """uint8 [B, 3, S, S] on `device`: the encoded rows decoded there in one call, the others copied."""
        from torchvision.io import ImageReadMode, decode_jpeg

        device = torch.device(device)
        if self.pixels is not None:
            out = self.pixels.to(device, non_blocking=True)
        else:
            out = torch.empty((self.count, 3, self.size, self.size), dtype=torch.uint8, device=device)
        if len(self.rows) == 0:
            return out
        bounds = self.offsets.tolist()
        encoded = [self.data[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
        try:
            images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as error:
            raise CoirError(
                f"data.decode=device: a JPEG of this batch (rows {self.rows.tolist()}) did not decode on "
                f"{device} ({error}); train with data.decode=host, which skips and reports bad samples"
            ) from error
        decoded = torch.stack(images)
        if decoded.shape[1:] != (3, self.size, self.size):
            raise CoirError(
                f"data.decode=device: decoded {list(decoded.shape[1:])} images, expected [3, {self.size}, "
                f"{self.size}] (the header said {self.size} x {self.size})"
            )
        out[self.rows.to(device)] = decoded
        return out
