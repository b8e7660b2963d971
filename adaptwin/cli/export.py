"""``adaptwin-export MODEL --out DIR`` (also ``adaptwin export``)."""

from __future__ import annotations

import argparse
import sys

from ..export import ExportOptions, export
from ..export.names import INT8_BLOCKS
from .common import run_command


def register(sub) -> None:
    p = sub.add_parser("export", help="ONNX graphs (and TensorRT engines), validated against PyTorch")
    p.set_defaults(func=run)
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="built-in name (tiny.en, base), HF/CTranslate2 folder, compressed folder or hub id")
    p.add_argument("--out", required=True, help="output folder (appears only after validation passed)")
    p.add_argument(
        "--engine",
        default="onnx",
        choices=["onnx", "trt", "ggml"],
        help="trt: also build TensorRT engines; ggml: a whisper.cpp model file (dense models) instead of ONNX",
    )
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="ggml: f32, f16, q8_0")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--calib", help="manifest/folder of speech for TensorRT int8 entropy calibration")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch of the TensorRT profiles")
    p.add_argument("--no-validate", action="store_true", help="skip the comparison with PyTorch (not recommended)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads for validation")
    p.add_argument(
        "--int8-blocks",
        default="auto",
        choices=list(INT8_BLOCKS),
        help="int8 weights quantized in 8-bit blocks of 32 (activations too): the FFN's second matrices, "
        "those and every decoder weight, or every weight (most exact, slower encoder); auto (default): "
        "all for a model with a dynamic audio context, decoder otherwise",
    )


def run(args: argparse.Namespace) -> int:
    options = ExportOptions(
        engine=args.engine,
        precision=args.precision,
        opset=args.opset,
        calib=args.calib,
        validate=not args.no_validate,
        max_batch=args.max_batch,
        threads=args.threads,
        int8_blocks=args.int8_blocks,
    )
    report = export(args.model, args.out, options)
    print(report.format())
    if options.engine == "ggml":
        print(f"saved {args.out}/ggml-model.bin (run it with whisper.cpp, e.g. pywhispercpp)")
    else:
        print(f"saved {args.out} (run it: adaptwin eval --backend ort --model {args.out} ...)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="adaptwin-export",
        description="Export a Whisper model (dense or compressed) "
        "to validated ONNX graphs, optionally TensorRT engines.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    add_arguments(parser)
    args = parser.parse_args(argv)

    return run_command("adaptwin-export", args, run)


if __name__ == "__main__":
    sys.exit(main())
