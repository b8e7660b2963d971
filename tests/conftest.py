import copy

import pytest
import torch


def tiny_config(**overrides):
    from transformers import WhisperConfig

    kw = dict(
        vocab_size=120,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        num_mel_bins=16,
        max_source_positions=50,
        max_target_positions=40,
        decoder_start_token_id=1,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=2,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    kw.update(overrides)
    return WhisperConfig(**kw)


@pytest.fixture(scope="session")
def tiny_dense():
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_config()).eval()
    # random init has tiny biases; make them sizeable so bias handling is really exercised
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    model.generation_config.max_length = 40
    return model


@pytest.fixture
def model(tiny_dense):
    return copy.deepcopy(tiny_dense)


@pytest.fixture(scope="session")
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 16, 100, generator=g), torch.randint(3, 120, (3, 9), generator=g)


@pytest.fixture(scope="session")
def calibration():
    from adaptwin import Calibration

    g = torch.Generator().manual_seed(2)
    return Calibration(
        torch.randn(4, 16, 100, generator=g), [torch.randint(3, 120, (7,), generator=g) for _ in range(4)]
    )
