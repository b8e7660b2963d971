"""Validation during adaptation on a tiny random model: the checkpoint kept is the best one,
however the later steps go; when to stop depends on steps and validation, not on the clock."""

import json
import time

import pytest
import tiny_run
import torch

from adaptwin.adapt import adapt_
from adaptwin.adapt.data import canary_utterances, hold_out
from adaptwin.adapt.train import Trainer
from adaptwin.adapt.validate import score
from adaptwin.data import Utterance


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_run.write_data(tmp_path_factory.mktemp("validation-data"))


def _adapt(data, **kw):
    teacher, student = tiny_run.models()
    config = tiny_run.config(**{"layerwise_epochs": 0, "holdout": 0.25, **kw})
    report = adapt_(
        student,
        teacher,
        data / "target.jsonl",
        data / "general.jsonl",
        config,
        canary=data / "canary.jsonl",
        processor=tiny_run.processor(),
    )
    return student, report


def test_hold_out_takes_a_spread_share_and_never_everything():
    utts = [Utterance(f"{i}.wav", str(i), duration=2.0) for i in range(40)]
    train, val = hold_out(utts, 0.15)
    assert 5 <= len(val) <= 7 and len(train) + len(val) == 40 and not set(train) & set(val)
    assert abs(sum(int(u.text) < 20 for u in val) - len(val) / 2) <= 1  # each half of the list gives its share
    assert train == [u for u in utts if u in train]  # order kept
    assert hold_out(utts, 0.0) == (utts, []) and hold_out(utts[:1], 0.4) == (utts[:1], [])


def test_canary_takes_its_validation_split_spread_over_speakers(tmp_path):
    rows = [
        {"audio": f"{s}{i}.wav", "text": f"w {i}", "speaker": s, "split": "validation" if i < 6 else "test"}
        for s in "ab"
        for i in range(8)
    ]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    utts, _ = canary_utterances(tmp_path / "c.jsonl", limit=6)
    assert len(utts) == 6 and all(u.split == "validation" for u in utts)
    assert sorted({u.speaker for u in utts}) == ["a", "b"] and sum(u.speaker == "a" for u in utts) == 3
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({**r, "split": "test"}) + "\n" for r in rows))
    with pytest.raises(ValueError, match="no transcribed utterances"):
        canary_utterances(tmp_path / "t.jsonl", limit=6)


def test_every_validation_is_recorded_and_the_score_is_the_stated_rule(data):
    _, report = _adapt(data, epochs=2, evals_per_epoch=2, patience=0)
    steps = [e["step"] for e in report.validation]
    assert steps[0] == 0 and steps[-1] == report.steps and steps == sorted(steps)  # the start is a candidate
    for e in report.validation:
        assert e["score"] == pytest.approx(e["target_ce"] + e["canary_ce"], abs=1e-4)
    assert report.kept["score"] == min(e["score"] for e in report.validation)
    assert set(report.dense) == {"target_ce", "canary_ce"}
    assert report.data["validation"]["canary"]["speakers"] == ["canary"]
    assert score({"target_ce": 1.0, "canary_ce": 2.0}, canary_weight=3.0) == 7.0


def test_a_later_epoch_made_worse_on_purpose_is_not_kept(data, monkeypatch):
    step, validate, seen, calls = Trainer._step, Trainer._validate, {}, [0]

    def sabotaged(self, phase, optimizer, batch, lr):
        loss = step(self, phase, optimizer, batch, lr)
        calls[0] += 1
        if calls[0] == 12:  # ruin the weights in the third epoch: every later validation is worse
            with torch.no_grad():
                for p in optimizer.param_groups[0]["params"]:
                    p.add_(torch.randn_like(p), alpha=float(p.abs().mean()) * 4 + 0.1)
        return loss

    def recording(self, phase, state, k):
        seen[k] = {n: self.params[n].detach().clone() for n in phase.params}
        return validate(self, phase, state, k)

    monkeypatch.setattr(Trainer, "_step", sabotaged)
    monkeypatch.setattr(Trainer, "_validate", recording)
    student, report = _adapt(data, epochs=4, evals_per_epoch=1, patience=0)
    before = [e for e in report.validation if e["step"] < 12]
    after = [e for e in report.validation if e["step"] >= 12]
    assert after and all(e["score"] > min(b["score"] for b in before) for e in after)
    assert report.kept["step"] < 12 and report.kept["step"] in seen
    params = dict(student.named_parameters())
    for name, value in seen[report.kept["step"]].items():  # the model holds the kept weights, not the last ones
        assert torch.equal(params[name], value), name


def test_patience_stops_training_and_keeps_the_best(data, monkeypatch):
    step, calls = Trainer._step, [0]

    def worsening(self, phase, optimizer, batch, lr):  # after step 4 every step makes the weights worse
        loss = step(self, phase, optimizer, batch, lr)
        calls[0] += 1
        if calls[0] > 4:
            with torch.no_grad():
                for p in optimizer.param_groups[0]["params"]:
                    p.mul_(1.5)
        return loss

    monkeypatch.setattr(Trainer, "_step", worsening)
    _, report = _adapt(data, epochs=8, evals_per_epoch=2, patience=2)
    assert report.stopped_by == "validation" and not report.stopped_early
    assert report.steps < 8 * report.validation[1]["step"] * 2  # far fewer than the 8 epochs planned
    last = [e["step"] for e in report.validation]
    assert last.index(report.kept["step"]) == len(last) - 3  # stopped two validations after the best


def test_the_stop_rule_does_not_depend_on_step_speed(data, monkeypatch):
    """The same run on a machine three times slower: same steps, same checkpoint, same weights,
    whether validation (patience) or the step cap ends it. The time budget is only a cap."""
    runs = []
    for slow in (0.0, 0.05):
        step = Trainer._step

        def timed(self, *a, _step=step, _slow=slow, **kw):
            time.sleep(_slow)
            return _step(self, *a, **kw)

        monkeypatch.setattr(Trainer, "_step", timed)
        for kw in (dict(epochs=6, patience=1), dict(epochs=6, patience=0, max_steps=7)):
            student, report = _adapt(data, evals_per_epoch=2, time_budget=300.0, lr=3e-2, **kw)
            runs.append((slow, kw, report, {n: p.detach().clone() for n, p in student.named_parameters()}))
        monkeypatch.setattr(Trainer, "_step", step)
    fast, slow = runs[:2], runs[2:]
    for (_, kw, a, pa), (_, _, b, pb) in zip(fast, slow):
        assert a.steps == b.steps and a.kept["step"] == b.kept["step"] and a.stopped_by == b.stopped_by, kw
        assert [e["score"] for e in a.validation] == [e["score"] for e in b.validation]
        assert all(torch.equal(pa[n], pb[n]) for n in pa)
    assert fast[0][2].stopped_by == "validation" and fast[0][2].steps < 6 * fast[0][2].validation[1]["step"] * 2
    assert fast[1][2].steps == 7 and fast[1][2].stopped_by == "steps"


def test_a_canary_speaker_that_training_hears_is_refused(data, tmp_path):
    rows = [json.loads(line) for line in (data / "general.jsonl").read_text().splitlines()]
    bad = tmp_path / "canary.jsonl"
    bad.write_text(
        "".join(json.dumps({**r, "audio": str(data / r["audio"]), "split": "validation"}) + "\n" for r in rows)
    )
    teacher, student = tiny_run.models()
    with pytest.raises(ValueError, match=r"canary speaker\(s\) \['general'\]"):
        adapt_(
            student,
            teacher,
            data / "target.jsonl",
            data / "general.jsonl",
            tiny_run.config(),
            canary=bad,
            processor=tiny_run.processor(),
        )
