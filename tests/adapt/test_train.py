"""The training loop alone, on a one-layer model: how a phase is cut and what it records."""

import contextlib

import torch
from torch import nn

from adaptwin.adapt.train import Dist, Phase, Trainer


def _trainer(deadline):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(8, 4)
    loss = lambda w: model(x[w]).pow(2).sum()  # noqa: E731
    phase = Phase("layer 0", ["weight", "bias"], loss, windows=8, epochs=3, lr=1e-2, deadline=deadline)
    return Trainer(
        model,
        [phase],
        batch=2,
        seed=0,
        dist=Dist(),
        key={},
        state_path=None,
        checkpoint_every=0,
        max_steps=None,
        autocast=contextlib.nullcontext,
        progress=False,
    )


def test_a_phase_cut_by_its_deadline_mid_epoch_still_records_its_loss():
    trainer = _trainer(deadline=0.0)  # over as soon as a step's time is known (after two steps)
    state = trainer.run()
    assert trainer.stopped_early and state.stopped_by == {"layer 0": "time budget"}
    assert state.steps_done == 2 and state.planned == {"layer 0": 2}
    assert len(state.history["layer 0"]) == 1 and state.history["layer 0"][0] > 0  # the partial epoch


def test_an_uncut_phase_records_one_loss_per_epoch():
    trainer = _trainer(deadline=None)
    state = trainer.run()
    assert not trainer.stopped_early and state.steps_done == 12 and len(state.history["layer 0"]) == 3
