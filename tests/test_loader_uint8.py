"""The uint8 image path (pipeline/decode.py, models/pixels.py) against the float path it replaced.

Stated tolerance: none on the CPU. Host geometry to uint8 then `normalize` on the batch gives, to the
bit, what each family's processor gave before (PIL geometry -> ToTensor -> Normalize per image), and
simplejpeg's pixels are PIL's; so training batches, their loss, and evaluation embeddings are equal.
The float path is written out below as it was, per family, independently of the code under test.
"""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_support import texts, write_shards
from torchvision import transforms as T

from coir.datasets.shards.images import ImageEncoder
from coir.eval.encode import encode_images
from coir.pipeline.augment import AugmentConfig
from coir.pipeline.config import DataConfig
from coir.pipeline.data import ImageDecoder, StreamState, TrainStream, make_loader, split_batch
from coir.pipeline.decode import PixelDecoder, open_pil
from coir.pipeline.models.blip.config import BlipModelConfig
from coir.pipeline.models.blip.processor import BLIP_MEAN, BLIP_STD, BlipProcessor
from coir.pipeline.models.blip.tokenizer import train_wordpiece
from coir.pipeline.models.components.clip_processor import CLIP_MEAN, CLIP_STD, ClipProcessor, pad_to_ratio
from coir.pipeline.models.components.processor import IMAGENET_MEAN, IMAGENET_STD, PadSquare, WordProcessor
from coir.pipeline.models.composeae.text import ComposeAEProcessor
from coir.pipeline.models.pixels import to_model_inputs
from coir.pipeline.models.registry import build_model

SIZE = 32
BICUBIC = T.InterpolationMode.BICUBIC


def float_path(name: str) -> T.Compose:
    """Each family's image transform as it was before the split: geometry, ToTensor, Normalize."""
    tail = [T.ToTensor()]
    if name == "blip":
        return T.Compose(
            [T.Resize((SIZE, SIZE), interpolation=BICUBIC), *tail, T.Normalize(BLIP_MEAN, BLIP_STD)]
        )
    if name.startswith("clip4cir"):
        pad = {
            "clip4cir-targetpad": lambda i: pad_to_ratio(i, 1.25),
            "clip4cir-squarepad": lambda i: pad_to_ratio(i, 1.0),
        }
        steps = [T.Lambda(pad[name])] if name in pad else []
        crop = [T.Resize(SIZE, interpolation=BICUBIC), T.CenterCrop(SIZE)]
        return T.Compose([*steps, *crop, *tail, T.Normalize(CLIP_MEAN, CLIP_STD)])
    if name == "word":
        return T.Compose(
            [PadSquare(), T.Resize(40), T.CenterCrop(SIZE), *tail, T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )
    return T.Compose([T.Resize(36), T.CenterCrop(SIZE), *tail, T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def processor(name: str):
    if name == "blip":
        return BlipProcessor(SIZE, tokenizer=None)
    if name.startswith("clip4cir"):
        return ClipProcessor(SIZE, 16, name.split("-")[1])
    if name == "word":
        return WordProcessor(vocab=None, image_size=SIZE, resize=40)
    return ComposeAEProcessor(tokenizer=None, image_size=SIZE, resize=36)


FAMILIES = ("blip", "clip4cir-targetpad", "clip4cir-squarepad", "clip4cir-clip", "word", "composeae")


def photo(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Smooth gradients plus noise: JPEG-like content whose every pixel differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def jpeg(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88, **options)
    return out.getvalue()


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_host_part_then_normalize_is_the_float_path_to_the_bit(name: str) -> None:
    proc, reference = processor(name), float_path(name)
    images = [photo(32, 32, 0), photo(57, 31, 1), photo(20, 66, 2), photo(64, 48, 3, "L")]
    host = torch.stack([proc.image(image) for image in images])
    assert host.dtype == torch.uint8 and host.shape == (4, 3, SIZE, SIZE)
    expected = torch.stack([reference(image.convert("RGB")) for image in images])
    assert torch.equal(proc.normalize(host), expected)
    # passes_through is only claimed where the host part really changes nothing
    square = photo(SIZE, SIZE, 4)
    if proc.passes_through(SIZE, SIZE):
        assert torch.equal(proc.image(square), torch.from_numpy(np.array(square)).permute(2, 0, 1))
    assert not proc.passes_through(SIZE + 1, SIZE) and not proc.passes_through(SIZE * 2, SIZE * 2)


@pytest.mark.parametrize(
    ("size", "mode", "options", "draft"),
    [
        ((64, 48), "RGB", {}, None),  # 4:2:0
        ((57, 31), "RGB", {"subsampling": 0}, None),  # 4:4:4, odd sizes
        ((40, 40), "L", {}, None),  # greyscale
        ((48, 64), "RGB", {"progressive": True}, None),
        ((160, 120), "RGB", {}, 32),  # draft: PIL's 1/2 .. 1/8 scales, not libjpeg's other eighths
        ((200, 90), "RGB", {}, 40),
        ((96, 96), "RGB", {}, 50),
    ],
)
def test_fast_decode_gives_pils_pixels(size, mode, options, draft) -> None:
    data = jpeg(photo(*size, seed=5, mode=mode), **options)
    fast = np.asarray(PixelDecoder(processor("blip"), draft=draft).pil(data))
    assert np.array_equal(fast, np.asarray(open_pil(data, "RGB", draft)))


def test_what_simplejpeg_cannot_read_goes_through_pil_and_bad_bytes_still_raise() -> None:
    decoder = PixelDecoder(processor("blip"))
    png, cmyk = io.BytesIO(), photo(SIZE, SIZE, 6).convert("CMYK")
    photo(SIZE, SIZE, 6).save(png, format="PNG")
    assert torch.equal(decoder.tensor(png.getvalue()), processor("blip").image(photo(SIZE, SIZE, 6)))
    cmyk_bytes = jpeg(cmyk)
    assert torch.equal(decoder.tensor(cmyk_bytes), processor("blip").image(open_pil(cmyk_bytes, "RGB", None)))
    with pytest.raises(OSError):
        decoder.tensor(b"\xff\xd8\xff\xe0 not a jpeg")


def test_square_shards_are_decoded_without_the_processors_geometry(tmp_path: Path) -> None:
    photo(90, 60, 7).save(tmp_path / "a.jpg", quality=95)
    stored = ImageEncoder("square", SIZE, 90).encode(tmp_path / "a.jpg")
    assert Image.open(io.BytesIO(stored)).size == (SIZE, SIZE)
    assert ImageEncoder("square", SIZE).manifest() == {"resize": "square", "size": SIZE, "jpeg_quality": 90}

    class NoGeometry(BlipProcessor):
        def image(self, image: Image.Image) -> torch.Tensor:
            raise AssertionError("an image at the training resolution was run through the geometry")

    pixels = PixelDecoder(NoGeometry(SIZE, tokenizer=None)).tensor(stored)
    assert torch.equal(pixels, processor("blip").image(open_pil(stored, "RGB", None)))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tok = train_wordpiece(texts() * 3, tmp_path_factory.mktemp("tok") / "tok", vocab_size=120)
    torch.manual_seed(0)
    return build_model(BlipModelConfig(tokenizer=str(tok), image_size=SIZE, max_length=12))


def _tar_samples(shards: list[Path]) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                out.setdefault(key, {})[field] = tar.extractfile(member).read()
    return out


def _old_image(data: bytes, reference: T.Compose) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return reference(img.convert("RGB"))


def test_training_batches_and_their_loss_equal_the_float_path(case, tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", shards=2, per_shard=6)
    config = DataConfig(
        batch_size=4, num_workers=0, shuffle_buffer=4, shuffle_initial=2, samples_per_epoch_per_worker=8
    )
    proc = case.processor()
    stream = TrainStream([str(s) for s in shards], proc, config, 3, 0, 1, StreamState.fresh(0, 1))
    raw, reference = _tar_samples(shards), float_path("blip")
    batches = list(make_loader(stream, config, seed=3, use_cuda=False))
    assert len(batches) == 2
    for batch in batches:
        inputs, meta = split_batch(batch)
        assert inputs["query_image"].dtype == inputs["target_image"].dtype == torch.uint8
        new = to_model_inputs(inputs, proc, "cpu")
        old = dict(
            inputs,
            query_image=torch.stack([_old_image(raw[k]["query.jpg"], reference) for k in meta["_keys"]]),
            target_image=torch.stack([_old_image(raw[k]["target.jpg"], reference) for k in meta["_keys"]]),
        )
        assert torch.equal(new["query_image"], old["query_image"])
        assert torch.equal(new["target_image"], old["target_image"])
        torch.manual_seed(1)
        new_loss = case.loss(new)["loss"]
        torch.manual_seed(1)
        assert torch.equal(new_loss, case.loss(old)["loss"])


def test_augmented_samples_equal_the_float_path_augmentation(case, tmp_path: Path) -> None:
    from coir.pipeline.augment import TripletAugment

    shards = write_shards(tmp_path / "shards", shards=1, per_shard=6)
    augment = AugmentConfig(enabled=True, randaugment_ops=2)
    decode = ImageDecoder(case.processor(), DataConfig(augment=augment))
    old_augment, reference = TripletAugment(augment, SIZE), float_path("blip")
    for n, sample in enumerate(_tar_samples(shards).values()):
        query, target, text = decode(sample, random.Random(n))
        with (
            Image.open(io.BytesIO(sample["query.jpg"])) as q,
            Image.open(io.BytesIO(sample["target.jpg"])) as t,
        ):
            ref, tgt, old_text = old_augment(
                q.convert("RGB"), t.convert("RGB"), sample["txt"].decode(), random.Random(n)
            )
        assert text == old_text
        new = case.processor().normalize(torch.stack([query, target]))
        assert torch.equal(new, torch.stack([reference(ref), reference(tgt)]))


def test_evaluation_embeddings_equal_the_float_path(case, tmp_path: Path) -> None:
    paths = []
    for i, (w, h) in enumerate([(32, 32), (50, 40), (30, 70)]):
        paths.append(tmp_path / f"g{i}.jpg")
        photo(w, h, 10 + i).save(paths[-1], quality=90)
    photo(40, 40, 20).save(tmp_path / "g3.png")
    paths.append(tmp_path / "g3.png")
    case.eval()
    gallery = encode_images(case, paths, batch_size=4)
    reference = float_path("blip")
    with torch.no_grad():
        old = case.encode_target(torch.stack([_old_image(p.read_bytes(), reference) for p in paths]))
    assert torch.equal(gallery, old)


def test_a_batch_is_decoded_in_place_and_equals_the_images_decoded_one_by_one(case) -> None:
    """Images at the model's size decode straight into the batch; others are resized and copied in;
    a sample that fails leaves its place to the next; a finished batch is never written again."""
    proc = case.processor()
    at_size = [jpeg(photo(SIZE, SIZE, seed)) for seed in range(5)]
    other = jpeg(photo(50, 30, 9))
    decode = ImageDecoder(proc, DataConfig(batch_size=3))
    pixels = PixelDecoder(proc)

    out = np.zeros((SIZE, SIZE, 3), np.uint8)
    assert pixels.tensor(at_size[0], out) is None  # decoded into its place: no tensor of its own
    assert torch.equal(torch.from_numpy(out).permute(2, 0, 1), pixels.tensor(at_size[0]))
    untouched = np.zeros_like(out)
    assert torch.equal(pixels.tensor(other, untouched), pixels.tensor(other)) and not untouched.any()

    def sample(query: bytes, target: bytes) -> dict[str, bytes]:
        return {"query.jpg": query, "target.jpg": target, "txt": b"is red now"}

    rows = [decode(sample(at_size[0], other), None)]
    with pytest.raises(OSError, match="cannot identify image"):
        decode(sample(at_size[1], b"\xff\xd8 not a jpeg"), None)  # its query was already written
    rows += [decode(sample(other, at_size[2]), None), decode(sample(at_size[3], at_size[4]), None)]
    batch = decode.collate(rows)
    expected_queries = [pixels.tensor(b) for b in (at_size[0], other, at_size[3])]
    expected_targets = [pixels.tensor(b) for b in (other, at_size[2], at_size[4])]
    assert torch.equal(batch["query_image"], torch.stack(expected_queries))
    assert torch.equal(batch["target_image"], torch.stack(expected_targets))
    for i, (query, target, _) in enumerate(rows):  # the rows are the batch's memory: nothing was copied
        assert query.data_ptr() == batch["query_image"][i].data_ptr()
        assert target.data_ptr() == batch["target_image"][i].data_ptr()
    kept = batch["query_image"].clone()
    decode.collate([decode(sample(at_size[4], at_size[4]), None)] * 3)
    assert torch.equal(batch["query_image"], kept)
