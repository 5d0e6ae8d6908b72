"""Field names of a WebDataset shard sample (the tar member suffixes after the key).

A triplet sample holds QUERY_IMAGE, TARGET_IMAGE, TEXT and META; a gallery sample GALLERY_IMAGE
and META; a test-split query sample QUERY_IMAGE, TEXT and META. The shard writers, the training
loader and the tests all use these names.
"""

from __future__ import annotations

QUERY_IMAGE = "query.jpg"  # the reference image, JPEG bytes
TARGET_IMAGE = "target.jpg"  # the target image, JPEG bytes
TEXT = "txt"  # the modification text, UTF-8
META = "json"  # ids, paths and source fields of the sample, JSON
GALLERY_IMAGE = "jpg"  # a gallery image, JPEG bytes

TRIPLET_FIELDS = (QUERY_IMAGE, TARGET_IMAGE, TEXT, META)
