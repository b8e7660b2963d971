"""TensorRT path up to the builder call (TensorRT itself cannot be installed here)."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from test_export import tiny_loaded  # noqa: E402

from adaptwin.export import ExportOptions, export  # noqa: E402
from adaptwin.export.trt import ENGINE_GRAPHS, TRT_OPS, build_engines, check_parsable, profiles  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_dense):
    import copy

    from adaptwin import AdaPTwinConfig, compress_
    from adaptwin.models.context import AudioContext

    compressed = copy.deepcopy(tiny_dense)
    compress_(compressed, AdaPTwinConfig(scope="all", rank_qk=8, rank_vo=12))
    dynamic = copy.deepcopy(compressed)  # as if adapted with --dynamic-context
    dynamic.config.adaptwin = {**dynamic.config.adaptwin, "context": AudioContext(0.2, 0.1).to_dict()}
    root = tmp_path_factory.mktemp("trt")
    return {
        name: export(tiny_loaded(m), root / name, ExportOptions(precision=p)).out
        for name, m, p in (
            ("fp32", compressed, "fp32"),
            ("int8", compressed, "int8"),
            ("dense", tiny_dense, "fp32"),
            ("dynamic", dynamic, "fp32"),
        )
    }


def test_missing_tensorrt_is_a_clear_error(tmp_path, tiny_dense):
    if "tensorrt" in sys.modules or _has_tensorrt():
        pytest.skip("TensorRT is installed here")
    from adaptwin.runtime import get_backend

    with pytest.raises(ImportError, match=r"pip install 'adaptwin\[trt\]'.*JetPack"):
        export(tiny_loaded(tiny_dense), tmp_path / "out", ExportOptions(engine="trt"))
    assert list(tmp_path.iterdir()) == []  # refused before any work
    with pytest.raises(ImportError, match="adaptwin\\[trt\\]"):
        get_backend("trt", tmp_path)


def _has_tensorrt():
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_float_graphs_use_only_operators_tensorrt_parses(folders):
    assert check_parsable(folders["fp32"]) == [] and check_parsable(folders["dense"]) == []
    assert check_parsable(folders["dynamic"]) == []
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & set(check_parsable(folders["int8"]))
    assert "Conv" in TRT_OPS and "MatMulInteger" not in TRT_OPS


@pytest.mark.parametrize("name", ["fp32", "dense", "dynamic"])
def test_profiles_match_the_graphs_and_run_at_their_corners(folders, name):
    """Every engine input has a (min, opt, max) profile whose fixed dims equal the graph's,
    and ONNX Runtime runs each graph at the profile's min and max shapes."""
    import onnx
    import onnxruntime as ort
    from transformers import WhisperConfig

    folder = folders[name]
    shapes = profiles(WhisperConfig.from_pretrained(str(folder)), max_batch=3)
    for graph in ENGINE_GRAPHS:
        inputs = onnx.load(str(folder / f"{graph}.onnx"), load_external_data=False).graph.input
        assert {i.name for i in inputs} == set(shapes[graph])
        for i in inputs:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for corner in shapes[graph][i.name]:
                assert len(corner) == len(dims)
                assert all(d is None or d == c for d, c in zip(dims, corner)), (graph, i.name, dims, corner)
        session = ort.InferenceSession(str(folder / f"{graph}.onnx"))
        max_len = WhisperConfig.from_pretrained(str(folder)).max_target_positions
        for point in (0, 2):  # min and max
            feed = {}
            tokens = shapes[graph]["input_ids"][point][1] if "input_ids" in shapes[graph] else 0
            for i in session.get_inputs():
                shape = shapes[graph][i.name][point]
                if i.name.startswith("past."):  # the largest past that still fits Whisper's positions
                    shape = (*shape[:2], min(shape[2], max_len - tokens), shape[3])
                if i.name == "logits_at":  # positions of input_ids: the first is always there
                    feed[i.name] = np.zeros(shape, np.int64)
                    continue
                feed[i.name] = (
                    np.ones(shape, np.int64) if "int64" in i.type else np.random.rand(*shape).astype(np.float32)
                )
            outputs = session.run(None, feed)
            assert all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
    frames = [corner[2] for corner in shapes["encoder_model"]["input_features"]]
    # a dynamic context's profile spans its shortest context to the window; others are static
    assert frames == ([20, 60, 100] if name == "dynamic" else [100, 100, 100])


class FakeTensorRT(types.ModuleType):
    """Records what our builder asks of TensorRT's Python API."""

    def __init__(self):
        super().__init__("tensorrt")
        fake = self
        self.calls = []

        class Logger:
            WARNING = 2

            def __init__(self, level):
                pass

        class Tensor:
            def __init__(self, name):
                self.name = name

        class Network:
            def __init__(self):
                self.inputs = []
                self.num_inputs = 0

            def get_input(self, i):
                return self.inputs[i]

        class Parser:
            def __init__(self, network, logger):
                self.network = network
                self.num_errors = 0

            def parse_from_file(self, path):
                import onnx

                graph = onnx.load(path, load_external_data=False).graph
                self.network.inputs = [Tensor(i.name) for i in graph.input]
                self.network.num_inputs = len(graph.input)
                fake.calls.append(("parse", Path(path).name))
                return True

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, lo, opt, hi):
                assert len(lo) == len(opt) == len(hi) and all(a <= b <= c for a, b, c in zip(lo, opt, hi))
                self.shapes[name] = (lo, opt, hi)

        class Config:
            def __init__(self):
                self.flags, self.profiles, self.int8_calibrator = set(), [], None

            def set_memory_pool_limit(self, pool, size):
                pass

            def add_optimization_profile(self, profile):
                self.profiles.append(profile)

            def set_flag(self, flag):
                self.flags.add(flag)

            def set_calibration_profile(self, profile):
                self.calibration_profile = profile

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                names = {t.name for t in network.inputs}
                assert names == set(config.profiles[0].shapes)
                fake.calls.append(("build", sorted(config.flags), config.int8_calibrator is not None))
                return b"engine"

        self.Logger, self.Builder, self.OnnxParser = Logger, Builder, Parser
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        self.BuilderFlag = types.SimpleNamespace(FP16="fp16", INT8="int8")

        class IInt8EntropyCalibrator2:
            def __init__(self):
                pass

        self.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_build_calls(folders, monkeypatch, tmp_path, precision):
    import shutil

    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    folder = tmp_path / "f"
    shutil.copytree(folders["fp32"], folder)
    engines = build_engines(folder, ExportOptions(engine="trt", precision=precision))
    assert sorted(engines) == sorted(ENGINE_GRAPHS)
    assert all(p.read_bytes() == b"engine" for p in engines.values())
    builds = [c for c in fake.calls if c[0] == "build"]
    assert len(builds) == 3 and all((("fp16" in b[1]) == (precision == "fp16")) and not b[2] for b in builds)


def test_engine_build_refuses_int8_graphs(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT())
    with pytest.raises(ValueError, match="TensorRT cannot parse"):
        build_engines(folders["int8"], ExportOptions(engine="trt", precision="fp16"))
