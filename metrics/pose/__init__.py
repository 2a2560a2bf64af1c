"""Pose extraction: the COCO-WholeBody layout and the extractors that produce it.

``DWPose`` (real videos; two ONNX files on onnxruntime) and ``ToyMarkerPose`` (the toy corpus)
share one interface: ``extractor_id`` and ``__call__(frames uint8 (F, H, W, 3)) -> (F, 133, 3)``.
"""


def __getattr__(name: str):
    # Imported on first use: DWPose pulls in onnxruntime, which the toy path does not need.
    if name == "DWPose":
        from metrics.pose.dwpose import DWPose

        return DWPose
    if name == "ToyMarkerPose":
        from metrics.pose.toy import ToyMarkerPose

        return ToyMarkerPose
    raise AttributeError(f"module 'metrics.pose' has no attribute {name!r}")
