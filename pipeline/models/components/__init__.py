"""Building blocks shared by several families: GloVe word embeddings, recurrent text encoders over a word
vocabulary (coir.datasets.vocab), the word-level processor and ResNet trunks with GeM pooling (ARTEMIS /
CMAP / MANME / TIRG / ComposeAE), and open_clip models with their processor (CLIP4Cir / Pic2Word).
Everything builds from random or local weights; nothing downloads."""
