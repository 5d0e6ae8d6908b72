"""Field names of a WebDataset shard sample (the tar member suffixes after the key).

A triplet sample holds QUERY_IMAGE, TARGET_IMAGE, TEXT and META; a gallery sample GALLERY_IMAGE
and META; a test-split query sample QUERY_IMAGE, TEXT and META. A feature triplet sample (written by
`coir data features` from a triplet sample) holds QUERY_FEATURE, TARGET_FEATURE, TEXT and META: the
outputs of a model's frozen image part on the two images, each one array in NumPy's .npy format
(float32, or float16 when built with --dtype float16; shape = the part's output for one image, e.g.
[2048] for a ResNet-152 with pooling). The shard writers, the training loader and the tests all use
these names.
"""

from __future__ import annotations

QUERY_IMAGE = "query.jpg"  # the reference image, JPEG bytes
TARGET_IMAGE = "target.jpg"  # the target image, JPEG bytes
TEXT = "txt"  # the modification text, UTF-8
META = "json"  # ids, paths and source fields of the sample, JSON
GALLERY_IMAGE = "jpg"  # a gallery image, JPEG bytes
QUERY_FEATURE = "query.npy"  # frozen-part features of the reference image, .npy bytes
TARGET_FEATURE = "target.npy"  # frozen-part features of the target image, .npy bytes

TRIPLET_FIELDS = (QUERY_IMAGE, TARGET_IMAGE, TEXT, META)
FEATURE_TRIPLET_FIELDS = (QUERY_FEATURE, TARGET_FEATURE, TEXT, META)
