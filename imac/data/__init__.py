"""Datasets of the IMAC model: the on-disk format, its validating reader, and the toy corpus.

``imac.data.manifest`` defines the format (a folder with ``manifest.jsonl`` and per-clip video,
audio, motion and keypoint files), checks a folder against it (``validate_dataset``) and reads
it (``Dataset.open``); ``imac.data.toy`` generates a small synthetic dataset in that format.
"""
