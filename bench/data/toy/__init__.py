"""The embedded toy corpus: a deterministic synthetic dataset structurally like the real one.

``bench.data.toy.corpus.generate_toy_corpus(out_dir, ToyCorpusConfig(seed=0))`` writes a dataset
in the project's format (see ``metrics.dataset``): per clip an mp4 with its audio, a 16 kHz
wav, SMPL-X-like motion parameters and ground-truth COCO-WholeBody keypoints, for several
identities with their own look and gesture style, split into train and test.

Modules: ``body`` (skeleton, kinematics, projection), ``speech`` (audio), ``gestures`` (motion that
follows the speech), ``render`` (frames), ``identities`` (the speakers), ``corpus`` (files).
"""
