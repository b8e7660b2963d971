"""Turn a CTranslate2 Whisper directory into a self-contained Hugging Face directory."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from ..errors import InvalidInput, MissingFile
from . import ct2
from .assets import openai_asset
from .tokenizer import build_tokenizer_json

logger = logging.getLogger(__name__)

LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la "
    "mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be "
    "tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue"
).split()


def whisper_config(arrays, vocab: list[str]):
    from transformers import WhisperConfig

    d = ct2.dims(arrays)
    ids = {tok: i for i, tok in enumerate(vocab) if tok.startswith("<|")}
    eot = ids["<|endoftext|>"]
    sot = ids["<|startoftranscript|>"]
    return WhisperConfig(
        **d,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
    )


def generation_config(ct2_config: dict, vocab: list[str], model_config):
    """The official Whisper generation settings, from the CTranslate2 config and vocabulary."""
    from transformers import GenerationConfig

    ids = {tok: i for i, tok in enumerate(vocab) if tok.startswith("<|")}
    multilingual = model_config.vocab_size >= 51865
    gen = GenerationConfig(
        bos_token_id=model_config.bos_token_id,
        eos_token_id=model_config.eos_token_id,
        pad_token_id=model_config.pad_token_id,
        decoder_start_token_id=model_config.decoder_start_token_id,
        max_length=model_config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(x) for x in ct2_config.get("alignment_heads", [])],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=multilingual,
    )
    if multilingual:
        gen.lang_to_id = {f"<|{code}|>": ids[f"<|{code}|>"] for code in LANGUAGES if f"<|{code}|>" in ids}
        gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        gen.task = "transcribe"  # without it, multilingual models detect the language but decode junk
        gen.forced_decoder_ids = [[1, None], [2, ids["<|transcribe|>"]]]
    return gen


def processor_files(ct2_dir: Path, vocab: list[str], n_mels: int, out: Path) -> None:
    """Feature extractor + tokenizer (rebuilt from OpenAI's rank files) saved into ``out``."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    multilingual = len(vocab) >= 51865
    ranks = openai_asset("multilingual.tiktoken" if multilingual else "gpt2.tiktoken")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_tokenizer_json(ct2_dir / "tokenizer.json", ranks, ct2_dir / "vocabulary.txt", tmp / "tokenizer.json")
        special = {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "tokenizer_class": "WhisperTokenizer",
            "model_max_length": 1024,
        }
        (tmp / "tokenizer_config.json").write_text(json.dumps(special))
        tokenizer = WhisperTokenizer.from_pretrained(str(tmp))
    for tok in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"):
        got = tokenizer.convert_tokens_to_ids(tok)
        if vocab[got] != tok:
            raise InvalidInput(f"rebuilt tokenizer maps {tok} to {got}, the model's vocabulary says otherwise")
    WhisperProcessor(WhisperFeatureExtractor(feature_size=n_mels), tokenizer).save_pretrained(str(out))


def convert_ct2_dir(ct2_dir: Path, out: Path, data: bytes | None = None) -> None:
    """Write an HF Whisper directory (safetensors, config, generation config, processor) into ``out``."""
    from transformers import WhisperForConditionalGeneration

    ct2_dir = Path(ct2_dir)
    for need in ("config.json", "vocabulary.txt", "tokenizer.json"):
        if not (ct2_dir / need).is_file():
            raise MissingFile(f"{ct2_dir} lacks {need}: not a complete CTranslate2 Whisper directory")
    if data is None:
        data = (ct2_dir / "model.bin").read_bytes()
    arrays = ct2.read_model_bin(data, origin=str(ct2_dir / "model.bin"))
    vocab = (
        (ct2_dir / "vocabulary.txt")
        .read_text(encoding="utf-8")
        .split("\n")[: arrays["decoder/embeddings/weight"].shape[0]]
    )
    config = whisper_config(arrays, vocab)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(ct2.to_state_dict(arrays), strict=False, assign=True)
    if [k for k in missing if k != "proj_out.weight"] or unexpected:
        raise InvalidInput(
            f"CTranslate2 -> HF mapping is incomplete: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.tie_weights()
    model.generation_config = generation_config(json.loads((ct2_dir / "config.json").read_text()), vocab, config)
    model.save_pretrained(str(out))
    processor_files(ct2_dir, vocab, config.num_mel_bins, out)
    logger.info("converted %s -> %s", ct2_dir, out)
