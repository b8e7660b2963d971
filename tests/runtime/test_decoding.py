import numpy as np
import pytest

from adaptwin.runtime.decoding import DecodingOptions, Hypothesis, Vocab, apply_rules, decode, top_indices

# as in Whisper: text tokens, then EOT, <|notimestamps|>, then the timestamps
V = Vocab(eot=8, sot_prompt=(1,), no_timestamps=9, timestamp_begin=10, suppress=(5,), begin_suppress=(8, 6))
TS = DecodingOptions(timestamps=True, max_initial_timestamp=0.04)  # first timestamp at most index 2


def masked(generated, options=TS, logits=None):
    if logits is None:  # text clearly likelier than the timestamps
        logits = np.zeros((1, 20), np.float32)
        logits[0, :8] = 4.0
    return np.isinf(apply_rules(logits, [generated], V, options)[0])


def test_plain_rules():
    m = masked([], DecodingOptions())
    assert m[5] and m[9] and m[8] and m[6] and not m[7]  # suppressed, <|notimestamps|>, begin-suppressed
    assert not masked([7], DecodingOptions())[8]  # EOT allowed after the first token


def test_first_token_is_an_early_timestamp():
    m = masked([])
    assert m[:10].all() and not m[10:13].any() and m[13:].all()


def test_timestamps_come_in_pairs_and_never_go_back():
    m = masked([12, 7])  # open segment at t=2 with text: it closes strictly later (no empty segment)
    assert m[10:13].all() and not m[13] and not m[7]
    m = masked([12, 7, 14])  # closed at t=4: next is a timestamp (>= 4) or EOT, not text
    assert m[:8].all() and m[10:14].all() and not m[14:].any()
    m = masked([12, 7, 14, 14])  # a pair: text (or EOT) must follow
    assert m[10:].all() and not m[7] and not m[8]


def test_timestamp_mass_beats_text():
    logits = np.full((1, 20), -5.0, np.float32)
    logits[0, 7] = 1.0  # the best single token is text ...
    logits[0, 10:] = 0.5  # ... but the timestamps together are likelier
    m = masked([12, 7, 8], logits=logits)
    assert m[:8].all()


class Toy:
    """Deterministic stepper: next-token logits depend on the last token only."""

    table = np.full((20, 20), -10.0, np.float32)
    table[1, 7], table[1, 4] = 0.0, -0.1  # greedy picks 7 ...
    table[7, 2] = table[7, 3] = 0.0  # ... then faces a coin toss: log(1/2) more
    table[4, 8] = 0.0  # 4 then EOT is better overall
    table[2, 8] = table[3, 8] = 0.0

    def step(self, tokens, state):
        return self.table[tokens[:, -1]][:, None, :], state

    def reorder(self, state, rows):
        return state


def test_greedy_and_beam():
    opts = DecodingOptions(max_new_tokens=5)
    greedy = decode(Toy(), None, 2, [1], V, opts)
    assert [h.tokens for h in greedy] == [[7, 2]] * 2
    beam = decode(Toy(), None, 2, [1], V, DecodingOptions(beam_size=3, max_new_tokens=5))
    assert all(b.logprob >= g.logprob for b, g in zip(beam, greedy))
    assert [h.tokens for h in beam] == [[4]] * 2


def test_greedy_keeps_each_generated_tokens_log_probability():
    """One per generated token after the forced prefix (EOT's is in ``logprob`` only), each
    the chosen token's log-softmax."""
    (h,) = decode(Toy(), None, 1, [1], V, DecodingOptions(max_new_tokens=5), prefix=[7])
    assert h.tokens == [7, 2] and len(h.token_logprobs) == 1
    assert h.token_logprobs[0] == pytest.approx(np.log(0.5), abs=1e-3)  # 7 -> 2 or 3: a coin toss
    assert h.logprob < h.token_logprobs[0]  # EOT's log-probability is in logprob only


def test_bad_options():
    with pytest.raises(ValueError):
        DecodingOptions(beam_size=0)
    with pytest.raises(ValueError):
        DecodingOptions(max_new_tokens=0)
    assert isinstance(Hypothesis().tokens, list)


def test_top_indices_are_the_largest_scores_in_order():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 1000))
    scores[2, :400] = -np.inf  # masked tokens, as the rules leave them
    scores[0, 7] = scores[4, 9] = 9.0  # a tie at the top
    got = top_indices(scores, 10)
    want = np.sort(scores, axis=None)[::-1][:10]
    np.testing.assert_array_equal(scores.ravel()[got], want)
    assert set(got[:2]) == {7, 4 * 1000 + 9}
    assert len(set(got)) == 10
    small = np.array([[1.0, -np.inf], [3.0, 2.0]])
    np.testing.assert_array_equal(top_indices(small, 10), [2, 3, 0, 1])  # fewer than n: all, sorted


def test_logsumexp_matches_the_log_softmax_normaliser():
    from adaptwin.runtime.decoding import _log_softmax, _logsumexp

    x = np.random.default_rng(1).standard_normal((3, 51865)).astype(np.float32) * 8
    x[1, :100] = -np.inf
    np.testing.assert_allclose(x - _logsumexp(x)[:, None], _log_softmax(x), rtol=0, atol=1e-4)
