"""``export(model, out)``: self-contained ONNX folders (and TensorRT engines, or a whisper.cpp model
file), validated against PyTorch."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import SAMPLE_RATE, load_audio
from ..data import bundled_clips
from ..errors import InvalidInput
from ..models.context import model_context
from ..runtime.ort import OrtWhisper
from .names import GRAPHS, INT8_BLOCKS, PRECISIONS
from .trt import build_engines, need_tensorrt

logger = logging.getLogger(__name__)

ENGINES = ("onnx", "trt", "ggml")
# whisper.cpp file types for our precisions: ggml's own 8-bit blocks stand in for int8
GGML_TYPES = {"fp32": "f32", "fp16": "f16", "int8": "q8_0"}
# largest rms(written - PyTorch) / rms(PyTorch) over the tensors of a ggml file, per file type: q8_0
# rounds to steps of max|block|/127, an rms error of a step/sqrt(12), about 1 % of a Gaussian block
GGML_TOLERANCE = {"f32": 0.0, "f16": 1e-3, "q8_0": 2e-2}


@dataclass(frozen=True)
class ExportOptions:
    engine: str = "onnx"
    precision: str = "fp32"
    opset: int = 17
    calib: str | None = None  # manifest/folder for TensorRT int8 entropy calibration
    validate: bool = True
    max_batch: int = 8  # TensorRT optimization profiles: largest batch
    threads: int | None = None  # ONNX Runtime threads during validation
    int8_blocks: str = "auto"  # which int8 weights go to 8-bit blocks (names.INT8_BLOCKS)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise InvalidInput(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 14 <= self.opset <= 21:
            raise InvalidInput(f"opset {self.opset} is not supported: use 14..21 (17 is TensorRT's safest choice)")
        if self.engine == "ggml" and self.opset != 17:
            raise InvalidInput("--opset applies to ONNX graphs, not to whisper.cpp files")
        if self.engine == "trt" and self.precision == "int8" and not self.calib:
            raise InvalidInput("TensorRT int8 needs calibration audio: pass --calib MANIFEST (a few minutes of speech)")
        if self.int8_blocks not in INT8_BLOCKS:
            raise InvalidInput(f"int8_blocks must be one of {INT8_BLOCKS}, got {self.int8_blocks!r}")
        if self.max_batch < 1:
            raise InvalidInput(f"max_batch must be >= 1, got {self.max_batch}")


@dataclass
class ExportReport:
    out: Path
    options: ExportOptions
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes
    validation: object = None  # ValidationReport
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def format(self) -> str:
        graphs = f", opset {self.options.opset}" if self.options.engine != "ggml" else ""
        lines = [
            f"exported {self.out} ({self.options.engine}, {self.options.precision}{graphs}) "
            f"in {self.seconds:.0f} s: {self.total_bytes / 2**20:.1f} MiB"
        ]
        lines += [f"  {name:<34} {size / 2**20:9.2f} MiB" for name, size in self.files.items()]
        if isinstance(self.validation, dict):  # a whisper.cpp file's round trip
            v = self.validation
            lines.append(
                f"  every tensor read back: worst relative rms error {v['worst']:.2e} ({v['tensor']}), "
                f"tolerance {v['tolerance']:g}"
            )
        elif self.validation is not None:
            lines.append(self.validation.format())
        return "\n".join(lines)


def export(source, out: str | os.PathLike, options: ExportOptions = ExportOptions(), clips=None) -> ExportReport:
    """Export ``source`` (anything ``load_whisper`` accepts, or a ``LoadedWhisper``) to ``out``.

    The folder is built beside ``out`` and appears only after validation passed: a failed
    check, an interrupt or a full disk leaves no half-written export (and any previous
    ``out`` untouched). ``clips``: real audio for validation (default: the bundled clips).
    """
    from ..models.checkpoint import LoadedWhisper, atomic_dir, check_output_dir, load_whisper
    from .onnx import export_torch_graphs, need_onnx, quantize_int8, write_shared
    from .validate import ValidationError, validate

    check_output_dir(out)  # before minutes of export
    if options.engine == "ggml":
        return _export_ggml(source, out, options)
    need_onnx()
    if options.engine == "trt":
        need_tensorrt()  # before minutes of work
    start = time.perf_counter()
    loaded = source if isinstance(source, LoadedWhisper) else load_whisper(source)
    model = loaded.model
    report = ExportReport(Path(out), options)
    # TensorRT parses float graphs and quantizes itself (entropy calibration); ONNX Runtime
    # gets int8 graphs from its own quantizer.
    precision = "fp32" if options.engine == "trt" and options.precision == "int8" else options.precision
    blocks = options.int8_blocks
    if blocks == "auto":
        blocks = "all" if model_context(model.config) is not None else "decoder"
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(dir=Path(tmp).parent, prefix=".export-work-") as work:
        work = Path(work)
        logger.info("tracing graphs (%s)", precision)
        graphs = export_torch_graphs(model, work / "raw", precision=precision, opset=options.opset, int8_blocks=blocks)
        if precision == "int8":
            logger.info("quantizing MatMul weights to int8 (blocks: %s)", blocks)
            graphs = {
                name: quantize_int8(
                    path,
                    work / "int8" / name / f"{name}.onnx",
                    blocks=blocks,
                    decoder=name.startswith("decoder"),
                )
                for name, path in graphs.items()
            }
        write_shared(graphs, tmp)
        model.config.save_pretrained(str(tmp))
        model.generation_config.save_pretrained(str(tmp))
        if loaded.processor is not None:
            loaded.processor.save_pretrained(str(tmp))
        if options.validate:
            if clips is None and loaded.processor is not None:
                clips = _default_clips(loaded)
            engine = OrtWhisper(tmp, providers=None, threads=options.threads, processor=loaded.processor)
            report.validation = validate(model, engine, precision, clips)
            logger.info("%s", report.validation.format())
            if not report.validation.ok:
                raise ValidationError(
                    "the export does not match PyTorch within its tolerance; nothing was written:\n"
                    + report.validation.format()
                )
        if options.engine == "trt":
            build_engines(tmp, options)
        meta = {
            "format": "adaptwin-onnx",
            "graphs": list(GRAPHS),
            "precision": precision,
            "opset": options.opset,
            "engine_precision": options.precision if options.engine == "trt" else None,
            "int8_blocks": blocks if precision == "int8" else None,
            "engine": options.engine,
            "source": str(loaded.path),
            "compressed": loaded.compressed,
            "validation": report.validation.to_dict() if report.validation is not None else None,
        }
        (tmp / "adaptwin_export.json").write_text(json.dumps(meta, indent=1))
        report.files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    report.seconds = time.perf_counter() - start
    return report


def _export_ggml(source, out, options: ExportOptions) -> ExportReport:
    """A folder with whisper.cpp's model file, every tensor read back and compared with PyTorch."""
    from ..models.checkpoint import LoadedWhisper, atomic_dir, load_whisper
    from .ggml import read_ggml, write_ggml
    from .validate import ValidationError

    start = time.perf_counter()
    loaded = source if isinstance(source, LoadedWhisper) else load_whisper(source)
    if loaded.processor is None:
        raise InvalidInput(f"{loaded.path} has no tokenizer/feature-extractor files: a whisper.cpp file needs both")
    kind = GGML_TYPES[options.precision]
    report = ExportReport(Path(out), options)
    with atomic_dir(out) as tmp:
        path = write_ggml(loaded.model, loaded.processor, Path(tmp) / "ggml-model.bin", kind)
        validation = None
        if options.validate:
            validation = report.validation = _check_ggml(loaded.model, read_ggml(path), kind)
            logger.info(
                "ggml round trip: worst relative rms error %.2e (%s)", validation["worst"], validation["tensor"]
            )
            if not validation["ok"]:
                raise ValidationError(
                    f"the whisper.cpp file does not hold the model's weights within {GGML_TOLERANCE[kind]:g} "
                    f"(worst: {validation['tensor']}, {validation['worst']:.2e}); nothing was written"
                )
        meta = {
            "format": "whisper.cpp-ggml",
            "file": path.name,
            "ggml_type": kind,
            "precision": options.precision,
            "engine": "ggml",
            "source": str(loaded.path),
            "compressed": loaded.compressed,
            "validation": validation,
        }
        (Path(tmp) / "adaptwin_export.json").write_text(json.dumps(meta, indent=1))
        report.files = {p.name: p.stat().st_size for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    report.seconds = time.perf_counter() - start
    return report


def _check_ggml(model, written, kind: str) -> dict:
    """Every tensor of the file against the PyTorch weights: relative rms error within the type's tolerance."""
    from .ggml import ggml_name

    worst, worst_name, missing = 0.0, "", []
    for hf_name, tensor in model.state_dict().items():
        name = ggml_name(hf_name)
        if name is None:
            continue
        if name not in written.tensors:
            missing.append(name)
            continue
        ref = tensor.detach().float().cpu().numpy().reshape(written.tensors[name][1])
        err = float(((written.tensors[name][2] - ref) ** 2).mean() ** 0.5 / max((ref**2).mean() ** 0.5, 1e-12))
        if err > worst:
            worst, worst_name = err, name
    ok = not missing and worst <= GGML_TOLERANCE[kind]
    return {"ok": ok, "worst": worst, "tensor": worst_name, "missing": missing, "tolerance": GGML_TOLERANCE[kind]}


def _default_clips(loaded):
    """The bundled LibriVox clips, cut to the model's window (tiny test models have short windows)."""
    seconds = 2 * loaded.model.config.max_source_positions * 160 / SAMPLE_RATE
    return [load_audio(u.audio)[: int(seconds * SAMPLE_RATE)] for u in bundled_clips()[:3]]


__all__ = ["ENGINES", "ExportOptions", "ExportReport", "PRECISIONS", "export"]
