"""Speaker adaptation on a tiny random model: each stage lowers its error, LoRA merges exactly,
a killed run resumes to the same result, two gloo processes match one, bad input is refused."""

import collections
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_run
import torch

from adaptwin.adapt import AdaptConfig, adapt_
from adaptwin.adapt.core import compressed_blocks
from adaptwin.adapt.data import build_windows
from adaptwin.adapt.lora import LoRALinear, inject_lora, merge_lora
from adaptwin.adapt.stages import block_loss, e2e_loss
from adaptwin.adapt.teacher import cache_teacher
from adaptwin.models.modules import LowRankLinear, TwinAttention

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_run.write_data(tmp_path_factory.mktemp("adapt-data"))


def _errors(student, teacher, data, config):
    """Per-block stage-1 error and mean stage-2 loss of ``student``, measured independently."""
    windows = build_windows(tiny_run.processor(), data / "target.jsonl", data / "general.jsonl", replay=config.replay)
    blocks = list(compressed_blocks(student))
    cache = cache_teacher(teacher, windows, blocks, "model.encoder.layers.0", config.topk, torch.device("cpu"))
    with torch.no_grad():
        per_block = {b: sum(float(block_loss(student, b, cache, w)) for w in range(len(windows))) for b in blocks}
        e2e = sum(
            float(
                e2e_loss(
                    student,
                    0,
                    windows,
                    cache,
                    w,
                    config.distill_for(windows.source[w]),
                    torch.device("cpu"),
                    config.encoder_match,
                )
            )
            for w in range(len(windows))
        )
    return per_block, e2e


def test_layerwise_stage_lowers_every_block_error(data):
    teacher, student = tiny_run.models()
    config = tiny_run.config(layerwise_epochs=4, epochs=0)
    before, _ = _errors(student, teacher, data, config)
    report = adapt_(
        student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor()
    )
    after, _ = _errors(student, teacher, data, config)
    assert set(before) == {f"model.{s}.layers.{i}" for s in ("encoder", "decoder") for i in (0, 1)}
    for block in before:
        assert after[block] < 0.9 * before[block], (block, before[block], after[block])
    assert len(report.blocks) == 4 and report.losses == [] and report.steps > 0


def test_end_to_end_stage_lowers_the_loss_and_records_the_data(data):
    teacher, student = tiny_run.models()
    config = tiny_run.config(layerwise_epochs=0, epochs=8, lr=1e-2, batch_size=1)
    frozen = {n: p.clone() for n, p in student.named_parameters() if "embed" in n or "layer_norm" in n}
    _, before = _errors(student, teacher, data, config)
    report = adapt_(
        student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor()
    )
    _, after = _errors(student, teacher, data, config)
    assert after < 0.9 * before
    assert report.losses[-1] < report.losses[0]
    assert all(torch.equal(p, dict(student.named_parameters())[n]) for n, p in frozen.items())  # only factors train
    record = student.config.adaptwin["adaptation"]
    assert record["data"]["target"]["utterances"] == 9  # the adapt split only: every 4th utterance is test
    assert record["data"]["general"]["windows"] >= 1 and record["config"]["epochs"] == 8


@pytest.mark.parametrize("keep", [0, 20])  # one low-rank pair; a split head (frequent rows dense)
def test_a_factorized_head_trains_end_to_end_and_stays_one_pair(data, keep):
    from adaptwin import AdaPTwinConfig, compress_

    teacher, _ = tiny_run.models()
    student = copy.deepcopy(teacher)
    student.config.eos_token_id = 100  # only ids 100.. count as special here, so a split head keeps 20 + 20 rows
    config = AdaPTwinConfig(scope="all", rank_qk=4, rank_vo=4, head=True, rank_head=16, head_keep=keep)
    compress_(student, config, token_prior=list(range(3, 100)))
    student.config.eos_token_id = teacher.config.eos_token_id
    assert student.config.adaptwin["head_kept"] == (40 if keep else None)
    before = {n: p.clone() for n, p in student.named_parameters() if n.startswith("proj_out.")}
    config = tiny_run.config(layerwise_epochs=0, epochs=4, lr=1e-2, batch_size=1)
    report = adapt_(
        student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor()
    )
    assert report.losses[-1] < report.losses[0]
    after = dict(student.named_parameters())
    assert before and all(not torch.equal(p, after[n]) for n, p in before.items())  # the head trained
    assert student.model.decoder.embed_tokens.head is student.proj_out  # lookup and logits still one pair


def test_target_windows_take_their_own_distillation_weight(data, monkeypatch):
    import adaptwin.adapt.core as core

    seen, real = collections.defaultdict(set), core.e2e_loss

    def spy(model, start, windows, cache, w, distill, *rest):
        seen[windows.source[w]].add(distill)
        return real(model, start, windows, cache, w, distill, *rest)

    monkeypatch.setattr(core, "e2e_loss", spy)
    teacher, student = tiny_run.models()
    config = tiny_run.config(layerwise_epochs=0, epochs=1, distill=0.7, target_distill=0.1)
    adapt_(student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor())
    assert seen == {"target": {0.1}, "general": {0.7}}
    assert tiny_run.config(distill=0.4, target_distill=None).distill_for("target") == 0.4  # None: one weight for all
    with pytest.raises(ValueError, match="target_distill=1.5"):
        tiny_run.config(target_distill=1.5)


def test_lora_merge_is_exact():
    torch.manual_seed(0)
    base = torch.nn.Linear(12, 7)
    x = torch.randn(5, 12)
    model = torch.nn.Sequential(copy.deepcopy(base))
    inject_lora(model, ["0"], rank=3, alpha=6.0, seed=1)
    with torch.no_grad():
        model[0].up.normal_()  # a trained adapter, not the zero one LoRA starts with
    y = model(x)
    assert not torch.allclose(y, base(x))
    assert merge_lora(model) == 1 and isinstance(model[0], torch.nn.Linear)
    torch.testing.assert_close(model(x), y, rtol=1e-6, atol=1e-6)


def test_lora_adaptation_leaves_the_compressed_structure(data):
    teacher, student = tiny_run.models()
    shapes = {n: p.shape for n, p in student.named_parameters()}
    config = tiny_run.config(layerwise_epochs=0, epochs=6, lora_rank=2)
    report = adapt_(
        student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor()
    )
    assert report.lora_merged == sum(
        isinstance(m, torch.nn.Linear)
        for t in student.modules()
        if isinstance(t, (TwinAttention, LowRankLinear))
        for m in t.modules()
    )
    assert not any(isinstance(m, LoRALinear) for m in student.modules())
    assert {n: p.shape for n, p in student.named_parameters()} == shapes
    assert report.losses[-1] < report.losses[0]


def _run(data, out, *extra, env=None):
    cmd = [sys.executable, str(HERE / "tiny_run.py"), str(data), str(out), *extra]
    return subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True, text=True
    )


def test_a_killed_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    whole = _run(data, tmp_path / "whole.pt")
    assert whole.returncode == 0, whole.stderr
    a = torch.load(tmp_path / "whole.pt", weights_only=False)
    total = a["report"]["steps"]
    state = tmp_path / "state"
    # killed twice: inside the layer-wise stage (after step 7), then inside the end-to-end stage
    for kill, more in ((7, 7), (total - 3, total - 10)):
        killed = _run(data, tmp_path / "never.pt", "--state", str(state), "--kill-after", str(more))
        assert killed.returncode == -9 and not (tmp_path / "never.pt").exists()
        saved = torch.load(state / "state-rank0.pt", weights_only=False)["state"]
        assert saved["steps_done"] == kill
    assert saved["phase"] == 4  # the end-to-end phase, after four layer-wise ones
    resumed = _run(data, tmp_path / "resumed.pt", "--state", str(state))
    assert resumed.returncode == 0, resumed.stderr
    b = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert b["report"]["resumed"] and not a["report"]["resumed"] and b["report"]["steps"] == total
    for name, value in a["params"].items():
        assert torch.equal(value, b["params"][name]), name
    assert a["report"]["losses"] == b["report"]["losses"] and a["report"]["blocks"] == b["report"]["blocks"]
    assert len(a["report"]["validation"]) > 2 and a["report"]["validation"] == b["report"]["validation"]
    assert a["report"]["kept"] == b["report"]["kept"]


def test_two_gloo_processes_match_one(data, tmp_path):
    single = _run(data, tmp_path / "single.pt")
    assert single.returncode == 0, single.stderr
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    cmd = lambda rank, out: subprocess.Popen(  # noqa: E731
        [sys.executable, str(HERE / "tiny_run.py"), str(data), str(out)],
        env={**os.environ, **env, "RANK": str(rank), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs = [cmd(0, tmp_path / "dist.pt"), cmd(1, tmp_path / "unused.pt")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    a, b = torch.load(tmp_path / "single.pt", weights_only=False), torch.load(tmp_path / "dist.pt", weights_only=False)
    assert b["report"]["processes"] == 2 and not (tmp_path / "unused.pt").exists()
    assert a["report"]["kept"]["step"] == b["report"]["kept"]["step"]  # both ranks validated alike
    for x, y in zip(a["report"]["validation"], b["report"]["validation"]):
        assert x["score"] == pytest.approx(y["score"], rel=1e-3)
    for name, value in a["params"].items():
        torch.testing.assert_close(b["params"][name], value, rtol=1e-4, atol=1e-5, msg=name)


def _manifest(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_input_gives_clear_errors(data, tmp_path):
    teacher, student = tiny_run.models()
    proc, cfg = tiny_run.processor(), tiny_run.config()
    rows = [json.loads(line) for line in (data / "target.jsonl").read_text().splitlines()]
    for r in rows:
        r["audio"] = str(data / r["audio"])
    only_test = _manifest(tmp_path / "t.jsonl", [dict(r, split="test") for r in rows])
    with pytest.raises(ValueError, match="no 'adapt' split"):
        adapt_(student, teacher, only_test, None, cfg, processor=proc)
    no_text = _manifest(tmp_path / "n.jsonl", [{k: v for k, v in r.items() if k != "text"} for r in rows])
    with pytest.raises(ValueError, match="no transcript"):
        adapt_(student, teacher, no_text, None, cfg, processor=proc)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="lists no utterances"):
        adapt_(student, teacher, tmp_path / "empty.jsonl", None, cfg, processor=proc)
    with pytest.raises(ValueError, match="is empty"):
        adapt_(student, teacher, [], None, cfg, processor=proc)
    with pytest.raises(FileNotFoundError):
        adapt_(student, teacher, tmp_path / "missing.jsonl", None, cfg, processor=proc)
    broken = _manifest(tmp_path / "b.jsonl", [dict(r, audio=str(tmp_path / "gone.wav"), duration=None) for r in rows])
    with pytest.raises((ValueError, OSError), match="gone.wav"):
        adapt_(student, teacher, broken, None, cfg, processor=proc)
    with pytest.raises(ValueError, match="not compressed"):
        adapt_(copy.deepcopy(teacher), teacher, data / "target.jsonl", None, cfg, processor=proc)
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        other.model.encoder.conv1.weight.add_(1.0)
    with pytest.raises(ValueError, match="not the model this one was compressed from"):
        adapt_(student, other, data / "target.jsonl", None, cfg, processor=proc)
    with pytest.raises(ValueError, match="replay"):
        AdaptConfig(replay=1.0)
    with pytest.raises(ValueError, match="nothing to do"):
        AdaptConfig(layerwise_epochs=0, epochs=0)


def test_a_time_budget_shortens_training_and_says_so(data):
    teacher, student = tiny_run.models()
    full = adapt_(
        copy.deepcopy(student),
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        tiny_run.config(epochs=20),
        processor=tiny_run.processor(),
    )
    assert not full.stopped_early
    short = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        tiny_run.config(epochs=20, time_budget=0.5 * full.seconds["total"]),
        processor=tiny_run.processor(),
    )
    assert short.stopped_early and 0 < short.steps < full.steps
    assert short.losses and len(short.blocks) == 4  # both stages still ran, each shortened


def test_training_utterances_use_the_adapt_split_and_skip_non_speech_annotations(tmp_path):
    from adaptwin.adapt.data import take_minutes, training_utterances

    rows = [
        {"audio": f"{i}.wav", "text": t, "split": s, "duration": 2.0}
        for i, (t, s) in enumerate(
            [
                ("hello there", "adapt"),
                ("(2 seconds of silence)", "adapt"),
                ("<beep>", "adapt"),
                ("press 1", "test"),
                ("press 2", "adapt"),
                ("too long", "adapt"),
            ]
        )
    ]
    rows[-1]["duration"] = 40.0
    utts, _ = training_utterances(_manifest(tmp_path / "m.jsonl", rows), "target")
    assert [u.text for u in utts] == ["hello there", "press 2", "too long"]
    assert [u.text for u in take_minutes(utts, None)] == ["hello there", "press 2"]  # 40 s fits no 30 s window
    assert [u.text for u in take_minutes(utts, 2 / 60)] == ["hello there"]


def test_minutes_are_spread_over_the_manifest_and_nested():
    from adaptwin.adapt.data import take_minutes
    from adaptwin.data import Utterance

    # a manifest sorted by topic: 40 prompts of kind a, then 40 of b, then 40 of c, 3 s each
    utts = [Utterance(audio=f"{k}{i}.wav", text=f"{k} {i}", duration=3.0) for k in "abc" for i in range(40)]
    picks = {m: take_minutes(utts, m) for m in (0.5, 1.0, 2.0)}
    for m, picked in picks.items():
        assert abs(sum(u.duration for u in picked) - m * 60) <= 3.0  # the minutes asked for, to one utterance
        assert picked == [u for u in utts if u in picked]  # manifest order kept
        for k in "abc":  # every third of the manifest gives its share, within two utterances
            share = sum(u.text.startswith(k) for u in picked)
            assert abs(share - len(picked) / 3) <= 2, (m, k, share, len(picked))
    assert set(map(id, picks[0.5])) <= set(map(id, picks[1.0])) <= set(map(id, picks[2.0]))  # nested
    assert take_minutes(utts, 100.0) == utts  # more than there is: all of it


def test_bf16_autocast_runs(data):
    teacher, student = tiny_run.models()
    report = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        None,
        tiny_run.config(precision="bf16", replay=0.0),
        processor=tiny_run.processor(),
    )
    assert report.precision == "bf16" and all(torch.isfinite(torch.tensor(report.losses)))
    assert all(p.dtype == torch.float32 for p in student.parameters())  # autocast: weights stay fp32


def test_a_full_disk_skips_checkpoints_but_never_stops_training(data, tmp_path, monkeypatch, caplog):
    import errno

    from adaptwin.adapt import train

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    teacher, student = tiny_run.models()
    monkeypatch.setattr(train.torch, "save", full)
    report = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        None,
        tiny_run.config(replay=0.0, epochs=1),
        processor=tiny_run.processor(),
        state_dir=tmp_path / "state",
    )
    assert report.steps > 0 and report.losses and not report.stopped_early
    assert "the disk is full" in caplog.text
    assert not list((tmp_path / "state").glob("*.tmp"))  # no half-written checkpoint left behind


def test_windows_mix_shuffled_utterances_in_varied_amounts(tmp_path):
    """Target windows hold from one utterance up to ``fill`` of the window, in a seeded shuffled
    order: training sees single short clips padded as at inference, not only long runs."""
    from transformers import WhisperFeatureExtractor

    data = tiny_run.write_data(tmp_path, n_target=48, n_general=4)
    proc = tiny_run.processor()
    proc.feature_extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=4)
    make = lambda seed: build_windows(proc, data / "target.jsonl", fill=1.0, seed=seed, replay=0.0)  # noqa: E731
    windows = make(0)
    texts = [proc.tokenizer.decode_ids(ids) for ids in windows.ids]
    sizes = [len(t.split()) // 2 for t in texts]  # each utterance reads two words
    assert sum(sizes) == 36 and min(sizes) == 1 and max(sizes) >= 4  # all 36 adapt utterances, 1 to 4+ per window
    adapt_order = [
        " ".join(tiny_run.WORDS[(i + k) % len(tiny_run.WORDS)] for k in range(2)) for i in range(48) if i % 4 != 3
    ]
    assert " ".join(texts) != " ".join(adapt_order)  # shuffled
    assert sorted(" ".join(texts).split()) == sorted(" ".join(adapt_order).split())  # each utterance once
    assert torch.equal(windows.features, make(0).features) and not torch.equal(
        windows.features[:3], make(1).features[:3]
    )


def test_a_time_budget_limits_the_teacher_pass_and_a_resume_keeps_its_windows(data, tmp_path):
    teacher, student = tiny_run.models()
    run = lambda **kw: adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",  # noqa: E731
        tiny_run.config(**kw),
        processor=tiny_run.processor(),
        state_dir=tmp_path,
    )
    first = run(time_budget=1e-3, max_steps=2)  # the budget is spent at once: the pass stops after one window
    assert first.data["used"]["windows"] == 1 < first.data["used"]["of"] and first.stopped_early
    again = run()  # resumed without a budget: the same single window, not all of them
    assert again.resumed and again.data["used"] == first.data["used"]
    fresh = adapt_(
        copy.deepcopy(student),
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        tiny_run.config(max_steps=1),
        processor=tiny_run.processor(),
    )
    assert fresh.data["used"]["windows"] == fresh.data["used"]["of"]


def test_auto_epochs_follow_the_data_not_the_clock():
    from adaptwin.adapt.config import AUTO_PASSES, MAX_EPOCHS

    assert AdaptConfig().end_to_end_epochs(AUTO_PASSES // 2) == 2  # about AUTO_PASSES window passes
    assert AdaptConfig().end_to_end_epochs(AUTO_PASSES * 3) == 1
    assert AdaptConfig().end_to_end_epochs(3) == MAX_EPOCHS
    assert AdaptConfig(time_budget=60).end_to_end_epochs(AUTO_PASSES // 2) == 2  # a budget changes nothing
    assert AdaptConfig(epochs=3).end_to_end_epochs(10_000) == 3


def test_steps_that_slow_down_still_end_within_the_time_budget(data, monkeypatch):
    from adaptwin.adapt.train import Trainer

    step, calls, longest = Trainer._step, collections.Counter(), [0.0]

    def slowing_step(self, phase, *a, **kw):  # each step of a phase longer than the last
        calls[phase.name] += 1
        start = time.perf_counter()
        time.sleep(min(0.3, 0.02 * calls[phase.name]))
        out = step(self, phase, *a, **kw)
        longest[0] = max(longest[0], time.perf_counter() - start)
        return out

    monkeypatch.setattr(Trainer, "_step", slowing_step)
    teacher, student = tiny_run.models()
    budget = 5.0
    report = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        tiny_run.config(epochs=50, time_budget=budget),
        processor=tiny_run.processor(),
    )
    assert report.stopped_early and report.losses
    # past it by at most about one step (0.3 s of sleep, more when the machine is busy)
    assert report.seconds["total"] <= budget + longest[0] + 0.2


def test_a_dynamic_context_is_taught_on_cut_windows_and_recorded(data, monkeypatch):
    """--dynamic-context: a share of the windows (every validation window) is cut to its audio
    plus the margin, rounded up to a bucket and never shorter than the audio; training lowers
    the student's loss at those cut contexts against the teacher's full-window targets; the
    saved config records the context, so the runtime feeds the audio's length."""
    import adaptwin.adapt.core as core
    from adaptwin.adapt.stages import window_positions
    from adaptwin.models.context import AudioContext

    seen, real = [], core.e2e_loss
    monkeypatch.setattr(core, "e2e_loss", lambda *a: (seen.append((a[4], a[2], a[-1])), real(*a))[1])
    teacher, student = tiny_run.models()
    config = tiny_run.config(
        layerwise_epochs=0, epochs=8, lr=1e-2, batch_size=1, dynamic_context=0.5, context_bucket=0.2, context_margin=0.1
    )
    windows = build_windows(tiny_run.processor(), data / "target.jsonl", data / "general.jsonl", replay=config.replay)
    positions = window_positions(windows, config.audio_context(), 1.0, 0)
    cache = cache_teacher(teacher, windows, [], "model.encoder.layers.0", config.topk, torch.device("cpu"))

    def cut_loss(model):  # the training objective, every window cut
        with torch.no_grad():
            return sum(
                float(
                    e2e_loss(
                        model,
                        0,
                        windows,
                        cache,
                        w,
                        config.distill_for(windows.source[w]),
                        torch.device("cpu"),
                        config.encoder_match,
                        positions[w],
                    )
                )
                for w in range(len(windows))
            )

    before = cut_loss(student)
    adapt_(student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=tiny_run.processor())
    assert cut_loss(student) < 0.9 * before
    cut = [(w, s, p) for w, s, p in seen if p is not None]
    assert cut and len(cut) < len(seen)  # a share of the windows, the rest at 30 s
    for w, s, p in cut:  # never cuts the window's audio (nor its margin); at most one bucket more
        need = s.seconds[w] + 0.1
        assert need <= p * 0.02 + 1e-9 < need + 0.2 or p == 50
    assert student.config.adaptwin["context"] == AudioContext(0.2, 0.1).to_dict()
    assert student.config.adaptwin["adaptation"]["config"]["dynamic_context"] == 0.5


def test_without_a_dynamic_context_every_window_keeps_30_s(data):
    teacher, student = tiny_run.models()
    student.config.adaptwin = {**student.config.adaptwin, "context": {"dynamic": True, "bucket": 0.2, "margin": 0.1}}
    adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        tiny_run.config(layerwise_epochs=0, epochs=1),
        processor=tiny_run.processor(),
    )
    assert "context" not in student.config.adaptwin  # re-adapted without it: the capability is not claimed


def test_speech_cuts_train_on_the_teachers_words_for_the_cut_audio(data, monkeypatch):
    """--speech-cuts: a share of the windows ends inside its audio, as a streaming buffer does.
    Their features are the cut audio's, their transcript is what the teacher decodes from it
    (greedy, timestamps included, its 30 s window), every other window is untouched, and the
    cut ones are always trained at the dynamic context."""
    from dataclasses import replace

    import adaptwin.adapt.core as core
    from adaptwin import AdaPTwinConfig, compress_
    from adaptwin.adapt.stages import window_positions
    from adaptwin.adapt.teacher import cut_speech
    from adaptwin.models.checkpoint import LoadedWhisper
    from adaptwin.models.context import AudioContext
    from adaptwin.runtime.backends import StepperBackend
    from adaptwin.runtime.torch_engine import TorchWhisper

    teacher, _ = tiny_run.models()
    gen = teacher.generation_config  # timestamps are ids 61..119, as the runtime tests' tiny vocabulary
    gen.no_timestamps_token_id, gen.decoder_start_token_id, gen.eos_token_id = 60, 1, 2
    proc = tiny_run.processor()
    windows = build_windows(proc, data / "target.jsonl", data / "general.jsonl", replay=0.5, keep_audio=True)
    # a random teacher never says <|endoftext|>: a transcript that runs on teaches nothing
    assert not any(cut_speech(teacher, proc, windows, 0.5, seed=0, language="en").cut)
    real_generate = StepperBackend.generate

    def ending(self, audios, **kw):  # the teacher as if it ended after 16 tokens
        hyps = real_generate(self, audios, **{**kw, "max_new_tokens": 16})
        return [replace(h, finished=True) for h in hyps]

    monkeypatch.setattr(StepperBackend, "generate", ending)
    # this one says one token over and over: a loop teaches nothing either
    assert not any(cut_speech(teacher, proc, windows, 0.5, seed=0, language="en").cut)
    torch.manual_seed(3)
    with torch.no_grad():  # sizeable biases (this seed): a teacher that does not loop
        for name, p in teacher.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    student = copy.deepcopy(teacher)
    compress_(student, AdaPTwinConfig(scope="all", rank_qk=4, rank_vo=4, ffn=True, rank_ffn=16))
    out = cut_speech(teacher, proc, windows, 0.5, seed=0, language="en")
    cut = [i for i, c in enumerate(out.cut) if c]
    assert len(cut) >= len(windows) // 4 and out.audio is None and out.record["speech_cuts"]["windows"] == len(cut)
    backend = StepperBackend(TorchWhisper(LoadedWhisper(teacher, proc, Path("teacher"))), "teacher", "full")
    for i in range(len(windows)):
        if i not in cut:
            assert torch.equal(out.features[i], windows.features[i]) and torch.equal(out.ids[i], windows.ids[i])
            continue
        audio = windows.audio[i][: round(out.seconds[i] * 16000)]
        assert 0 < len(audio) < len(windows.audio[i])
        feats = proc.feature_extractor([audio], sampling_rate=16000, return_tensors="pt").input_features[0]
        assert torch.allclose(out.features[i], feats)
        (hyp,) = real_generate(backend, [audio], timestamps=True, max_new_tokens=16)
        assert any(t > 60 for t in hyp.tokens)  # the target carries the teacher's timestamps
        assert out.ids[i].tolist() == [1] + hyp.tokens  # <|startoftranscript|>, then the teacher's tokens
        assert out.labels[i].tolist() == hyp.tokens + [2]  # ... and <|endoftext|>
    positions = window_positions(out, AudioContext(0.2, 0.1), 0.5, 0)
    assert all(positions[i] is not None for i in cut)
    assert sum(p is not None for p in positions) == max(len(cut), round(0.5 * len(out)))

    with pytest.raises(ValueError, match="speech_cuts"):
        AdaptConfig(dynamic_context=0.2, speech_cuts=0.3)
    seen, real = [], core.e2e_loss  # through adapt_: the cut windows train at the cut context
    monkeypatch.setattr(core, "e2e_loss", lambda *a: (seen.append((a[2].cut[a[4]], a[-1])), real(*a))[1])
    config = tiny_run.config(epochs=1, batch_size=1, dynamic_context=0.5, speech_cuts=0.25, context_bucket=0.2)
    report = adapt_(student, teacher, data / "target.jsonl", data / "general.jsonl", config, processor=proc)
    assert report.data["speech_cuts"]["windows"] > 0
    assert any(c for c, _ in seen) and all(p is not None for c, p in seen if c)
