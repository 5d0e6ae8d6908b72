"""JPEG decoding on the training device (`data.decode: device`): workers ship the bytes, the device decodes.

With `data.decode: host` (the default) DataLoader workers decode every JPEG (pipeline/decode.py) and ship
uint8 pixels. With `device`, a worker only reads each JPEG's header: a baseline JPEG of exactly the
model's input size (shards built with `coir data shards --resize square --size S`), which the processor
would pass through unchanged, is shipped as its bytes, and the training step decodes the whole batch at
once on its device with torchvision.io.decode_jpeg (nvJPEG on CUDA). Anything else (another size, PNG,
progressive, arithmetic-coded, 12-bit or CMYK JPEG, a file without its end marker) is decoded in the
worker as before, into its row of the batch, so every sample still trains. A JPEG whose header and end
are whole but whose data is damaged fails on the device and stops the run naming its batch row (the
host path skips and counts such samples: data.max_bad_share).

A batch of bytes is a `JpegBatch`: the bytes of all its encoded images in one tensor (one shared-memory
block from the worker, one pinned copy), their offsets, the rows they belong to, and the host-decoded
rows' pixels. Pixels: torchvision's CPU decoder is libjpeg-turbo like simplejpeg and gives the host path's
pixels to the bit (tests/test_device_decode.py); nvJPEG's IDCT and chroma upsampling differ slightly
(benchmarks/RESULTS.md gives the difference measured on an H200). Augmentation needs the pixels in the
worker, so `data.augment` and `data.decode: device` exclude each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simplejpeg
import torch

from coir.common.errors import CoirError
from coir.pipeline.decode import JPEG_MAGIC
from coir.pipeline.models.pixels import worker_uint8

SEQUENTIAL_FRAMES = (0xC0, 0xC1)  # SOF0 baseline and SOF1 extended sequential, Huffman-coded
JPEG_END = b"\xff\xd9"  # EOI


def frame_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(frame marker, sample precision, height, width) of a JPEG, read by walking its marker segments up
    to the frame header; None when the bytes hold no frame header before the first scan."""
    offset = len(JPEG_MAGIC)
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # a fill byte
            offset += 1
            continue
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT, JPG, DAC)
            segment = data[offset + 4 : offset + 2 + length]
            if len(segment) < 5:
                return None
            return (
                marker,
                segment[0],
                int.from_bytes(segment[1:3], "big"),
                int.from_bytes(segment[3:5], "big"),
            )
        offset += 2 + length
    return None


def ships_as_bytes(data: bytes, size: int) -> bool:
    """Whether these bytes are a JPEG for the device: sequential Huffman-coded 8-bit (what nvJPEG and
    libjpeg-turbo both decode), size x size, YCbCr or grey, and whole (ending in EOI: a truncated file
    stays on the host, where a bad sample is skipped)."""
    if not data.startswith(JPEG_MAGIC) or not data.endswith(JPEG_END):
        return False
    frame = frame_header(data)
    if frame is None or frame[0] not in SEQUENTIAL_FRAMES or frame[1] != 8 or frame[2:] != (size, size):
        return False
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
    except ValueError:
        return False
    return colorspace in ("YCbCr", "Gray")


def decodes_on_device(processor: Any) -> bool:
    """Whether data.decode=device can apply to this processor: a fixed square input size at which images
    pass through unchanged (else every image needs the host's geometry and is decoded there)."""
    size = getattr(processor, "image_size", None)
    return isinstance(size, int) and processor.passes_through(size, size)


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
        data = worker_uint8(int(lengths.sum()))  # shared memory in a worker: no copy on the way out
        view = data.numpy()
        offsets = lengths.cumsum(0)
        for row, start in zip(rows, offsets.tolist(), strict=False):
            view[start : start + len(encoded[row])] = memoryview(encoded[row])
        return cls(data, offsets, torch.tensor(rows, dtype=torch.int64), pixels, size, count)

    @staticmethod
    def _one(data: torch.Tensor, row: int, device: torch.device) -> torch.Tensor:
        """One image decoded alone, after its batch failed: the error names its row."""
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as error:
            raise CoirError(
                f"data.decode=device: the JPEG of batch row {row} did not decode on {device} ({error}): its "
                "header and end marker were whole, its data not; data.decode=host skips and counts such "
                "samples (data.max_bad_share)"
            ) from error

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
        bounds, rows = self.offsets.tolist(), self.rows.tolist()
        encoded = [self.data[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
        try:
            images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            images = [self._one(data, row, device) for data, row in zip(encoded, rows, strict=True)]
        shape = (3, self.size, self.size)
        wrong = [row for row, image in zip(rows, images, strict=True) if tuple(image.shape) != shape]
        if wrong:
            raise CoirError(
                f"data.decode=device: the JPEGs of batch rows {wrong} decoded to another size than the "
                f"{self.size} x {self.size} their headers give; train with data.decode=host"
            )
        out[self.rows.to(device)] = torch.stack(images)
        return out
