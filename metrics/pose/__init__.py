"""Pose extraction: the COCO-WholeBody layout and the extractors that produce it."""
