"""Building blocks shared by the ARTEMIS / CMAP / MANME families: GloVe word embeddings, recurrent
text encoders over a word vocabulary (coir.datasets.vocab), the word-level processor, and ResNet
trunks with GeM pooling. Everything builds from random or local weights; nothing downloads."""
