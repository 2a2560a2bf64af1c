"""``python -m metrics``: the metrics on folders of videos.

    python -m metrics compute --real DIR --fake DIR [--metrics fgd,div,bas,fvd] [--out FILE.json]
                              [--fgd-ae DIR] [--i3d PATH] [--extractor toy|dwpose] [--protocol imac-bench]
    python -m metrics train-fgd-ae --data DATASET --out DIR [--steps 1000]
    python -m metrics sanity --data DATASET --out DIR
    python -m metrics protocol [--protocol NAME]          # print every constant of a protocol
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from metrics.protocol import PRESETS, get_protocol


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", default="imac-bench", choices=sorted(PRESETS), help="metric protocol preset")
    parser.add_argument("--extractor", default="toy", choices=("toy", "dwpose"),
                        help="pose extractor: toy (toy corpus markers) or dwpose (real videos)")
    parser.add_argument("--dwpose-detector", help="yolox_l.onnx (local path), with --extractor dwpose")
    parser.add_argument("--dwpose-pose", help="dw-ll_ucoco_384.onnx (local path), with --extractor dwpose")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keypoint cache folder (default ~/.cache/imac-bench/keypoints; 'none' disables)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--quiet", action="store_true")


def _cache(args) -> Path | None:
    from metrics.evaluate import DEFAULT_CACHE

    if args.cache is None:
        return DEFAULT_CACHE
    return None if str(args.cache) == "none" else args.cache


def _extractor(args):
    from metrics.evaluate import make_extractor

    return make_extractor(args.extractor, args.dwpose_detector, args.dwpose_pose, args.device)


def _compute(args) -> int:
    from metrics.evaluate import evaluate, format_table, write_result

    result = evaluate(args.real, args.fake, metrics=args.metrics.split(","), protocol=get_protocol(args.protocol),
                      autoencoder=args.fgd_ae, i3d=args.i3d, i3d_seed=args.i3d_seed, extractor=_extractor(args),
                      cache_dir=_cache(args), split=None if args.split == "all" else args.split,
                      on_error="skip" if args.skip_bad else "raise",
                      allow_resolution_mismatch=args.allow_resolution_mismatch, device=args.device,
                      progress=None if args.quiet else _log)
    print(format_table(result))
    if args.out:
        json_path, csv_path = write_result(result, args.out)
        print(f"written {json_path} and {csv_path}")
    return 0


def _train(args) -> int:
    from metrics.fgd_training import train_fgd_autoencoder

    checkpoint, info = train_fgd_autoencoder(
        args.data, args.out, get_protocol(args.protocol), _extractor(args), keypoints=args.keypoints,
        split=args.split, steps=args.steps, latent=args.latent, seed=args.seed, cache_dir=_cache(args),
        progress=None if args.quiet else _log)
    print(f"skeleton autoencoder {checkpoint} written to {args.out}: {info['training_windows']} windows, "
          f"L1 {info['first_l1']:.4f} -> {info['final_l1']:.4f}")
    return 0


def _sanity(args) -> int:
    from metrics.sanity import format_sanity, run_sanity

    report = run_sanity(args.data, args.out, get_protocol(args.protocol), autoencoder=args.fgd_ae, i3d=args.i3d,
                        extractor=args.extractor, ae_steps=args.steps, cache_dir=_cache(args),
                        metrics=tuple(args.metrics.split(",")), progress=None if args.quiet else _log)
    print(format_sanity(report))
    return 0 if report["passed"] else 1


def _protocol(args) -> int:
    protocol = get_protocol(args.protocol)
    print(json.dumps({"label": protocol.label, **protocol.to_dict()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m metrics", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    compute = commands.add_parser("compute", help="metrics of generated videos against real ones")
    compute.add_argument("--real", type=Path, help="real videos: a dataset folder or <identity>/<clip>.mp4 files")
    compute.add_argument("--fake", type=Path, required=True, help="generated videos: <identity>/<clip>.mp4")
    compute.add_argument("--metrics", default="fgd,div,bas,fvd", help="comma-separated: fgd,div,bas,fvd")
    compute.add_argument("--out", type=Path, help="result file (.json; a .csv is written beside it)")
    compute.add_argument("--fgd-ae", type=Path, help="skeleton autoencoder folder (for fgd and div)")
    compute.add_argument("--i3d", type=Path, help="I3D weights (i3d_pretrained_400.pt or i3d_torchscript.pt); "
                                                  "without: an untrained stand-in, reported as FVD*")
    compute.add_argument("--i3d-seed", type=int, default=0, help="seed of the untrained stand-in I3D")
    compute.add_argument("--split", default="test", help="split of a real dataset folder: train, test or all")
    compute.add_argument("--skip-bad", action="store_true", help="skip unreadable clips and list them")
    compute.add_argument("--allow-resolution-mismatch", action="store_true")
    _add_common(compute)
    compute.set_defaults(handler=_compute)

    train = commands.add_parser("train-fgd-ae", help="train the FGD skeleton autoencoder on a dataset")
    train.add_argument("--data", type=Path, required=True, help="dataset folder (manifest.jsonl)")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--split", default="train")
    train.add_argument("--keypoints", choices=("extract", "dataset"), default="extract",
                       help="extract with --extractor (default) or use the dataset's keypoint files")
    train.add_argument("--steps", type=int, default=1000)
    train.add_argument("--latent", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    _add_common(train)
    train.set_defaults(handler=_train)

    sanity = commands.add_parser("sanity", help="check that the metrics order known controls correctly")
    sanity.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. the toy corpus)")
    sanity.add_argument("--out", type=Path, required=True, help="folder for the controls and the report")
    sanity.add_argument("--fgd-ae", type=Path, help="an autoencoder folder (default: train one)")
    sanity.add_argument("--i3d", type=Path)
    sanity.add_argument("--steps", type=int, default=400, help="autoencoder training steps when training one")
    sanity.add_argument("--metrics", default="fgd,div,bas,fvd",
                        help="comma-separated; FVD with I3D at 224 px is the slow part on a CPU")
    _add_common(sanity)
    sanity.set_defaults(handler=_sanity)

    protocol = commands.add_parser("protocol", help="print every constant of a protocol preset")
    protocol.add_argument("--protocol", default="imac-bench", choices=sorted(PRESETS))
    protocol.set_defaults(handler=_protocol)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"python -m metrics: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
