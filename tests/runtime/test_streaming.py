import numpy as np
import pytest
from fake_whisper import NO_TS, WORD, FakeBackend, NonzeroVAD, runs_of, script_audio

from adaptwin.audio import SAMPLE_RATE
from adaptwin.runtime.mic import simulate
from adaptwin.runtime.streaming import DYNAMIC_CONTEXT_POLICY, LocalAgreement, OnlineProcessor, policy_for
from adaptwin.runtime.vad import EnergyVAD


def test_local_agreement_commits_the_common_prefix_once():
    policy = LocalAgreement(2)
    assert policy.update(["the", "cat"]) == []  # one hypothesis: nothing agreed yet
    assert policy.update(["the", "cat", "sat"]) == ["the", "cat"]
    # later hypotheses continue after the committed words
    assert policy.update(["sat", "on"]) == ["sat"]
    assert policy.update(["in", "the"]) == []  # "on" vs "in": no agreement, nothing repeated
    assert policy.pending() == ["in", "the"]
    assert policy.flush() == ["in", "the"] and policy.pending() == []


def test_local_agreement_commits_only_what_is_ready_but_remembers_the_rest():
    policy = LocalAgreement(2)
    policy.update(["the", "cat", "sat"])
    assert policy.update(["the", "cat", "sat", "on"], ready=1) == ["the"]
    # the held words still agree with the next hypothesis: they commit once ready
    assert policy.update(["cat", "sat", "on", "a"]) == ["cat", "sat", "on"]
    assert policy.update(["a", "mat"], ready=0) == [] and policy.pending() == ["a", "mat"]


def test_local_agreement_keys_and_n():
    policy = LocalAgreement(2, key=str.lower)
    policy.update(["Hello", "World"])
    assert policy.update(["hello", "world", "again"]) == ["hello", "world"]  # the newest spelling wins
    policy = LocalAgreement(3)
    assert policy.update(["a"]) == [] and policy.update(["a"]) == []
    assert policy.update(["a", "b"]) == ["a"]
    with pytest.raises(ValueError):
        LocalAgreement(0)


def test_units_carry_timestamps_and_times():
    from adaptwin.runtime.streaming import units_of

    decode = lambda ids: "".join(f" w{i - 10}" for i in ids)  # noqa: E731
    ts = lambda t: 1000 + int(round(t / 0.02))  # noqa: E731
    tokens = [ts(0.0), 10, 11, ts(1.0), ts(2.0), 12, ts(3.0)]
    units = units_of(tokens, 0, 1000, decode, offset=5.0, window=30.0)
    assert [u.word.text for u in units] == [" w0", " w1", " w2"]
    assert units[0].tokens == (ts(0.0), 10) and units[2].tokens == (ts(1.0), ts(2.0), 12)
    assert units[0].word.start == 5.0 and units[1].word.end == 6.0 and units[2].word.start == 7.0
    tail = units_of(tokens, 3, 1000, decode, offset=5.0, window=30.0)  # words from token 3 on
    assert [u.word.text for u in tail] == [" w2"]


def committed_text(emitted):
    return [e.word.text.strip() for e, _ in emitted]


@pytest.mark.parametrize("chunk", [0.5, 1.0])
def test_online_processor_commits_every_word_once_in_order(chunk):
    audio = script_audio(60, pause_every=7)
    online = OnlineProcessor(FakeBackend(), min_chunk=chunk)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(60)]
    times = [at for _, at in emitted]
    assert times == sorted(times)
    ends = {f"w{k}": b for k, _, b in runs_of(audio)}
    lags = [at - ends[e.word.text.strip()] for e, at in emitted]
    assert min(lags) > -1e-6  # never committed before it was heard


def test_buffer_stays_bounded_on_a_long_stream():
    audio = script_audio(400, pause_every=9)  # ~3.7 minutes
    backend = FakeBackend()
    online = OnlineProcessor(backend, min_chunk=1.0, trim_after=10.0, max_buffer=20.0)
    longest = 0.0
    step = SAMPLE_RATE
    out = []
    for i in range(0, len(audio), step):
        online.insert_audio(audio[i : i + step])
        out += online.process()
        longest = max(longest, len(online.buffer) / SAMPLE_RATE)
    out += online.finish()
    assert longest <= 20.0
    assert max(backend.calls) <= 20.0
    assert [e.word.text.strip() for e in out] == [f"w{k}" for k in range(400)]


def test_buffer_bounded_even_when_nothing_agrees():
    class Fickle(FakeBackend):  # a new random word every time: LocalAgreement never commits
        def _hear(self, audio, timestamps):
            return [1000, 10 + np.random.randint(0, 900)]

    backend = Fickle()
    online = OnlineProcessor(backend, min_chunk=1.0, trim_after=10.0, max_buffer=12.0)
    for _ in range(60):
        online.insert_audio(np.full(SAMPLE_RATE, 0.1, np.float32))
        online.process()
        assert len(online.buffer) / SAMPLE_RATE <= 12.0


def test_vad_skips_silence_and_flushes_after_a_pause():
    silence = np.zeros(5 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([silence, script_audio(5), silence, script_audio(3), silence])
    backend = FakeBackend()
    online = OnlineProcessor(backend, min_chunk=0.5, vad=EnergyVAD(-70))
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(5)] + [f"w{k}" for k in range(3)]
    no_vad = FakeBackend()
    simulate(OnlineProcessor(no_vad, min_chunk=0.5), audio)
    assert len(backend.calls) < len(no_vad.calls) * 0.7  # silence is not decoded
    # the first utterance is final soon after it ends, without waiting for more speech
    first_end = 5 + 5 * 0.5
    at = dict((e.word.text.strip(), t) for e, t in emitted if t < 12)["w4"]
    assert at - first_end < 1.5


@pytest.mark.parametrize("flush", [0.3, 0.6])
def test_a_pause_is_timed_within_a_vad_frame_not_a_chunk(flush):
    """The utterance is final at the first chunk boundary after ``silence_flush`` seconds of
    silence, counted from where the speech ends inside a chunk, not from the next chunk."""
    speech = script_audio(4)  # ends with a short gap, then silence
    last = runs_of(speech)[-1][2]
    audio = np.concatenate([speech, np.zeros(5 * SAMPLE_RATE, np.float32)])
    online = OnlineProcessor(FakeBackend(), min_chunk=0.5, vad=EnergyVAD(-70), silence_flush=flush)
    final_at = None
    for i in range(0, len(audio), SAMPLE_RATE // 2):
        online.insert_audio(audio[i : i + SAMPLE_RATE // 2])
        if online.process() and not online.policy.pending() and final_at is None:
            final_at = online.received
    assert final_at is not None and not online.buffer.size  # flushed and the buffer cut
    frame = online.vad_frame
    expected = np.ceil((last + flush - frame / 2) / 0.5) * 0.5  # the chunk boundary after the pause
    assert final_at - last >= flush - frame and final_at == pytest.approx(expected)
    with pytest.raises(ValueError):
        OnlineProcessor(FakeBackend(), silence_flush=0.0)


def test_the_forced_prefix_stays_within_its_bound():
    """Committed tokens are forced into every later decode of the buffer; past ``max_prefix``
    the buffer is cut after the last committed word, so the prefix never crowds the decoder's
    positions, and every word is still committed once."""
    backend = FakeBackend()
    online = OnlineProcessor(backend, min_chunk=0.5, max_prefix=12)
    emitted = simulate(online, script_audio(40))  # no pauses: no segment-end cut would come first
    assert committed_text(emitted) == [f"w{k}" for k in range(40)]
    assert max(len(p) for p in backend.prefixes) <= 12
    assert any(len(p) > 0 for p in backend.prefixes)


def test_energy_vad():
    vad = EnergyVAD(-40)
    assert not vad.speech(np.zeros(800, np.float32))
    assert vad.speech(0.1 * np.sin(np.arange(800, dtype=np.float32)))


def test_silero_vad_on_real_speech():
    from adaptwin.audio import load_audio
    from adaptwin.data import bundled_clips
    from adaptwin.runtime.vad import SileroVAD, load_vad, silero_path

    if silero_path() is None:
        pytest.skip("faster-whisper (which ships the Silero model) is not installed")
    vad = load_vad("auto")
    assert isinstance(vad, SileroVAD)
    speech = load_audio(bundled_clips()[0].audio)[: 2 * SAMPLE_RATE]
    assert vad.speech(speech)
    vad.reset()
    assert not vad.speech(np.zeros(SAMPLE_RATE, np.float32))
    assert not vad.speech(0.003 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32))


class LoopingBackend(FakeBackend):
    """Greedy decoding ends every hypothesis with a hallucinated loop ("w98 w99 w98 w99 ...");
    beam search does not (as openai/whisper's fallback hopes)."""

    def generate(self, audios, *, num_beams=1, **kw):
        out = super().generate(audios, num_beams=num_beams, **kw)
        if num_beams == 1:
            for hyp in out:
                hyp.tokens = list(hyp.tokens) + [108, 109] * 6
        return out


def test_loop_start_finds_repeated_patterns_only():
    from types import SimpleNamespace

    from adaptwin.runtime.streaming import loop_start

    units = lambda text: [SimpleNamespace(key=w) for w in text.split()]  # noqa: E731
    assert loop_start(units("press four to five to five to five to five to")) == 4  # after "to five" once
    assert loop_start(units("no no no no")) == 1
    assert loop_start(units("one two three one two three one two three")) is None  # three repeats: speech
    assert loop_start(units("the cat sat on the mat")) is None


def test_cut_loop_keeps_a_loop_once_and_speech_whole():
    from adaptwin.runtime.segments import cut_loop

    assert cut_loop("Ha ha ha ha ha ha ha ha ha.") == "Ha"
    assert cut_loop("press four to five, to five to five to five to five") == "press four to five,"
    assert cut_loop("one two three one two three one two three") == "one two three one two three one two three"
    assert cut_loop("no, no, no.") == "no, no, no."  # three times is speech
    assert cut_loop("") == ""


def test_a_looping_hypothesis_is_never_committed():
    audio = script_audio(40, pause_every=7)
    online = OnlineProcessor(LoopingBackend(), min_chunk=1.0)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(40)]
    assert online.loops > 0 and online.decodes > 2 * online.loops - 1  # each loop cost one extra decode


@pytest.mark.parametrize("trim_heap", [True, False])
def test_freed_heap_is_returned_after_every_decode(trim_heap, monkeypatch):
    import platform

    from adaptwin.runtime import heap

    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    online = OnlineProcessor(FakeBackend(), min_chunk=1.0, trim_heap=trim_heap)
    simulate(online, script_audio(20, pause_every=7))
    assert online.decodes > 3 and len(calls) == (online.decodes if trim_heap else 0)
    monkeypatch.undo()
    assert heap.trim() == (platform.libc_ver()[0] == "glibc")  # found where it exists, a no-op elsewhere


def test_ends_repeated_is_a_phrase_said_again_at_the_end():
    from adaptwin.runtime.segments import ends_repeated

    assert ends_repeated("Not always. Not always.") == 2
    assert ends_repeated("Why it's clothing? Why it's clothing? why it's clothing") == 3
    assert ends_repeated("He said: not always. Not always.") == 2
    assert not ends_repeated("No. No.")  # one word twice is speech
    assert not ends_repeated("Not always. Not always, sir.")
    assert not ends_repeated("the cat sat on the mat") and not ends_repeated("")
    assert ends_repeated("Oh, Lizzy, it cannot be. It cannot be.", 4) == 3
    assert ends_repeated("Oh, Lizzy, it cannot be. It cannot be.", 3) == 3
    assert not ends_repeated("Oh, Lizzy, it cannot be. It cannot be.", 2)  # said before the new words
    assert not ends_repeated("No. No.", 2) and not ends_repeated("the cat sat", 3)
    # three times in a row
    assert ends_repeated("Press one. Press one. Press one.", times=3) == 2
    assert not ends_repeated("Press one. Press one.", times=3)
    assert not ends_repeated("Press one. Press one. Press one.", 1, times=3)


class CutContextBackend(FakeBackend):
    """A dynamic-context model on a cut context reads its buffer twice ("w0 w1 w0 w1"), or
    with ``tail`` its last words ("w0 w1 w2 w1 w2": the prefix included); on the whole
    window it does not."""

    def __init__(self, tail: int | None = None):
        super().__init__()
        self.tail = tail

    def frames(self, audios, margin=None):
        return 200

    def generate(self, audios, *, full_context=False, **kw):
        out = super().generate(audios, full_context=full_context, **kw)
        if not full_context:
            for hyp in out:
                words = [t for t in hyp.tokens if t < NO_TS]
                if len(words) >= 2:
                    hyp.tokens = list(hyp.tokens) + words[-(self.tail or len(words)) :]
        return out


@pytest.mark.parametrize("tail", [None, 2, 3])
def test_a_cut_context_reading_its_buffer_twice_commits_every_word_once(tail):
    audio = script_audio(30, pause_every=6)
    online = OnlineProcessor(CutContextBackend(tail), min_chunk=1.0)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(30)]
    assert online.loops > 0  # the doubled hypotheses were decoded again on the whole window


class EchoBackend(FakeBackend):
    """On the whole window, a greedy decode after a prompt or forced prefix says that text's
    last three words again before what it hears (as Whisper repeats a sentence it was prompted
    with, once more every decode); beam search without the prompt hears only the audio.
    ``stuck``: every decode after such text says its last three words again and nothing else."""

    def __init__(self, stuck: bool = False):
        super().__init__()
        self.stuck = stuck

    def generate(self, audios, *, num_beams=1, previous=None, prefix=None, **kw):
        out = super().generate(audios, num_beams=num_beams, previous=previous, prefix=prefix, **kw)
        said = [t for t in list(previous or []) + list(prefix or []) if t < NO_TS]
        if (num_beams == 1 or self.stuck) and len(said) >= 3:
            n = len(prefix or [])
            for hyp in out:
                at = n + (len(hyp.tokens) > n and hyp.tokens[n] >= NO_TS)  # inside the first new segment
                hyp.tokens = list(hyp.tokens[:at]) + said[-3:] + ([] if self.stuck else list(hyp.tokens[at:]))
        return out


@pytest.mark.parametrize("pauses", [False, True])
def test_a_decoder_echoing_its_prompt_commits_every_word_once(pauses):
    """The echoed words are the forced prefix's, or (``pauses``: each pause ends the buffer,
    its text becoming the prompt of a decode with no prefix) the prompt's."""
    audio = script_audio(30, pause_every=6)
    vad = dict(vad=NonzeroVAD(), silence_flush=0.6) if pauses else {}
    online = OnlineProcessor(EchoBackend(), min_chunk=1.0, **vad)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(30)]
    assert online.loops > 0  # the echoing hypotheses were decoded again without the prompt


def test_a_phrase_is_never_committed_a_third_time_in_a_row():
    """A decoder that says its last words again whatever it is given may repeat them once
    (speech does), never twice."""
    online = OnlineProcessor(EchoBackend(stuck=True), min_chunk=1.0)
    words = committed_text(simulate(online, script_audio(30, pause_every=6)))
    assert words[:4] == ["w0", "w1", "w2", "w3"]
    thrice = [
        (i, p)
        for p in range(2, len(words) // 3 + 1)
        for i in range(len(words) - 3 * p + 1)
        if words[i : i + p] == words[i + p : i + 2 * p] == words[i + 2 * p : i + 3 * p]
    ]
    assert not thrice and len(words) < 30


class CutGuesser(FakeBackend):
    """Hears a word the window's end cuts as another word, the same guess every time (as
    Whisper completes a word it heard half of)."""

    def _hear(self, audio, timestamps):
        tokens = super()._hear(audio, timestamps)
        runs = runs_of(audio)
        if runs and runs[-1][2] >= len(audio) / SAMPLE_RATE - 1e-9 and runs[-1][2] - runs[-1][1] < WORD - 1e-6:
            cut = 10 + runs[-1][0]
            tokens = [t + 500 if t == cut else t for t in tokens]
        return tokens


@pytest.mark.parametrize("hold", [0.0, 0.3])
def test_a_word_the_buffer_cuts_is_held_until_heard_whole(hold):
    """Two decodes a short chunk apart both cut the same word and guess it alike: agreement
    alone commits the guess; ``hold`` waits until the word ends before the buffer does."""
    audio = script_audio(20, pause_every=5)
    online = OnlineProcessor(CutGuesser(), min_chunk=0.2, hold=hold, vad=NonzeroVAD(), silence_flush=0.6)
    emitted = simulate(online, audio)
    words = committed_text(emitted)
    if hold:
        assert words == [f"w{k}" for k in range(20)]
    else:
        assert any(int(w[1:]) >= 500 for w in words)  # a guess committed
    # the last word before a pause is not held: once the audio's end is silence, the next
    # decodes agree on it before the pause is long enough to flush the utterance
    ends = {f"w{k}": b for k, _, b in runs_of(audio)}
    finals = [at - ends[w] for w, (_, at) in zip(words, emitted) if int(w[1:]) % 5 == 4 and int(w[1:]) < 19]
    assert finals and max(finals) < 0.6
    with pytest.raises(ValueError, match="hold"):
        OnlineProcessor(FakeBackend(), hold=-0.1)


@pytest.mark.parametrize("pad", [0.0, 2.0])
def test_a_cut_context_hears_pad_seconds_of_silence_after_its_buffer(pad):
    class Cut(FakeBackend):
        def frames(self, audios, margin=None):
            return 200  # a cut context

    backend = Cut()
    audio = script_audio(12, pause_every=6)
    online = OnlineProcessor(backend, min_chunk=0.5, pad=pad)
    assert committed_text(simulate(online, audio)) == [f"w{k}" for k in range(12)]
    seconds = np.array(backend.calls)  # the buffer (at most its 28 s) plus the silence
    assert seconds.min() >= pad + 0.5 - 1e-6 and np.all(seconds <= 30.0 + 1e-6)
    with pytest.raises(ValueError, match="pad"):
        OnlineProcessor(FakeBackend(), pad=31.0)


class Listener(FakeBackend):
    """Records the words each decode hears."""

    def __init__(self):
        super().__init__()
        self.heard = []

    def _hear(self, audio, timestamps):
        self.heard.append({k for k, *_ in runs_of(audio)})
        return super()._hear(audio, timestamps)


@pytest.mark.parametrize("forget", [None, 2.0])
def test_a_short_pause_makes_words_final_and_keeps_the_audio(forget):
    """A pause of ``silence_flush`` makes the words before it final either way; below
    ``forget`` the words after it are decoded with the speech before it, and a pause of
    ``forget`` drops that audio."""
    speech = script_audio(12, pause_every=4, pause=0.8)
    cut = int(runs_of(speech)[7][2] * SAMPLE_RATE)  # after w7: a long pause
    audio = np.concatenate([speech[:cut], np.zeros(int(2.2 * SAMPLE_RATE), np.float32), speech[cut:]])
    backend = Listener()
    online = OnlineProcessor(backend, min_chunk=0.5, vad=NonzeroVAD(), silence_flush=0.4, forget=forget)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(12)]
    ends = {f"w{k}": b for k, _, b in runs_of(audio)}
    final = {e.word.text.strip(): at - ends[e.word.text.strip()] for e, at in emitted}
    assert final["w3"] < 0.4 + 0.5 + online.vad_frame + 1e-6 and final["w7"] < 0.4 + 0.5 + online.vad_frame + 1e-6
    assert any({3, 4} <= h for h in backend.heard) == (forget is not None)  # heard across the short pause
    assert not any({7, 8} <= h for h in backend.heard)  # never across the long one
    with pytest.raises(ValueError, match="forget"):
        OnlineProcessor(FakeBackend(), silence_flush=0.6, forget=0.3)


def test_a_pause_after_a_decode_that_heard_the_speech_end_commits_without_decoding_again():
    backend = FakeBackend()
    online = OnlineProcessor(backend, min_chunk=0.5, vad=NonzeroVAD(), silence_flush=0.4)
    online.insert_audio(script_audio(3))  # ends with a 0.1 s gap: the speech end is heard
    online.process()
    online.insert_audio(np.zeros(int(0.2 * SAMPLE_RATE), np.float32))
    online.insert_audio(script_audio(4)[int(1.5 * SAMPLE_RATE) :])  # w3 (speech again)
    online.insert_audio(np.zeros(int(0.2 * SAMPLE_RATE), np.float32))
    online.process()  # hears w3 and the silence after it
    calls = len(backend.calls)
    online.insert_audio(np.zeros(int(0.5 * SAMPLE_RATE), np.float32))
    words = [e.word.text.strip() for e in online.process()]  # the pause: final without a decode
    assert len(backend.calls) == calls and words and words[-1] == "w3"
    assert not online.policy.pending()


def test_a_chunk_of_frames_is_a_chunk():
    """Ten 0.1 s VAD frames make a 1 s chunk (their float sum is 0.9999999999999999)."""
    backend = FakeBackend()
    online = OnlineProcessor(backend, min_chunk=1.0)
    online.insert_audio(script_audio(2))
    assert online.needed() == 0.0 and online.process() == [] and len(backend.calls) == 1


def test_a_pause_is_final_when_it_is_long_enough_not_at_the_next_chunk():
    """``needed`` wakes the loop when the pause reaches ``silence_flush`` (to a VAD frame),
    however long the chunk."""
    speech = script_audio(4)
    last = runs_of(speech)[-1][2]
    audio = np.concatenate([speech, np.zeros(3 * SAMPLE_RATE, np.float32)])
    online = OnlineProcessor(FakeBackend(), min_chunk=1.0, vad=EnergyVAD(-70), silence_flush=0.3)
    at = {e.word.text.strip(): t for e, t in simulate(online, audio)}
    assert list(at) == ["w0", "w1", "w2", "w3"] and at["w3"] - last < 0.3 + online.vad_frame


def test_speech_after_a_final_pause_is_decoded_within_a_chunk():
    """After a pause made the words final, the loop still wakes a chunk later (speech may come
    back before ``forget``), not only when the silence would reach ``forget``."""
    first = script_audio(3)
    gap = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([first, gap, script_audio(6)[len(first) :]])
    online = OnlineProcessor(FakeBackend(), min_chunk=0.5, vad=NonzeroVAD(), silence_flush=0.4, forget=2.0)
    decoded_at, process = [], online.process

    def recorded():
        decodes = online.decodes
        out = process()
        if online.decodes > decodes:
            decoded_at.append(online.received)
        return out

    online.process = recorded
    assert committed_text(simulate(online, audio)) == [f"w{k}" for k in range(6)]
    back = (len(first) + len(gap)) / SAMPLE_RATE
    assert any(back < t <= back + online.min_chunk + online.vad_frame for t in decoded_at)


@pytest.mark.parametrize("chars", [0, 12, 400])
def test_the_prompt_is_the_last_prompt_chars_of_committed_text_in_whole_words(chars):
    class Prompted(FakeBackend):
        def generate(self, audios, *, previous=None, **kw):
            self.prompts.append(self.engine.processor.tokenizer.decode(previous or []))
            return super().generate(audios, previous=previous, **kw)

    backend = Prompted()
    backend.prompts = []
    online = OnlineProcessor(backend, min_chunk=0.5, vad=NonzeroVAD(), prompt_chars=chars)
    assert committed_text(simulate(online, script_audio(24, pause_every=4))) == [f"w{k}" for k in range(24)]
    longest = max(len(p) for p in backend.prompts)
    assert longest <= chars and (longest > chars - 5 if chars < 100 else longest > 12)
    with pytest.raises(ValueError, match="prompt_chars"):
        OnlineProcessor(FakeBackend(), prompt_chars=-1)


def test_the_measured_policy_follows_the_model_and_yields_to_given_options():
    class Dynamic(FakeBackend):
        def frames(self, audios, margin=None):
            return 200  # a cut context

    assert policy_for(FakeBackend()) == {} and policy_for(Dynamic()) == DYNAMIC_CONTEXT_POLICY
    online = OnlineProcessor.for_backend(Dynamic(), min_chunk=None, trim_after=8.0, gate=None)
    assert {k: getattr(online, k) for k in DYNAMIC_CONTEXT_POLICY} == {**DYNAMIC_CONTEXT_POLICY, "trim_after": 8.0}
    assert online.gate is None  # None given for a non-policy option is kept, not replaced by the default
    plain = OnlineProcessor.for_backend(FakeBackend(), silence_flush=None)
    assert (plain.min_chunk, plain.silence_flush, plain.forget) == (0.5, 0.6, 0.6)
    words = simulate(OnlineProcessor.for_backend(Dynamic()), script_audio(12, pause_every=6))
    assert committed_text(words) == [f"w{k}" for k in range(12)]


def test_a_held_word_commits_at_the_first_decode_that_hears_past_it():
    """The held word still takes part in the agreement: once a decode hears ``hold`` past its
    end and the decode before said it too, it commits, not one decode later."""
    audio = script_audio(20, pause_every=5)
    ends = {f"w{k}": b for k, _, b in runs_of(audio)}
    chunk, hold = 0.2, 0.3
    online = OnlineProcessor(FakeBackend(), min_chunk=chunk, hold=hold, vad=NonzeroVAD(), silence_flush=0.6)
    emitted = simulate(online, audio)
    assert committed_text(emitted) == [f"w{k}" for k in range(20)]
    lags = [at - ends[e.word.text.strip()] for e, at in emitted]
    assert max(lags) <= hold + chunk + 1e-6


class UnsureGuesser(CutGuesser):
    """``CutGuesser`` whose greedy decode gives its token probabilities: a guess at a cut word
    at 0.2, the word ``w{unsure}`` always at 0.3, every other token at 0.95."""

    def __init__(self, unsure: int):
        super().__init__()
        self.unsure = 10 + unsure

    def generate(self, audios, *, prefix=None, **kwargs):
        hyps = super().generate(audios, prefix=prefix, **kwargs)
        for h in hyps:
            new = h.tokens[len(prefix or []) :]
            p = [0.2 if 510 <= t < 910 else 0.3 if t == self.unsure else 0.95 for t in new]
            h.token_logprobs = [float(np.log(x)) for x in p]
        return hyps


@pytest.mark.parametrize("confidence, unsure_hold", [(0.0, 0.0), (0.5, 0.0), (0.5, 0.6)])
def test_a_word_the_decoder_is_unsure_of_waits_for_a_sure_decode_or_a_pause(confidence, unsure_hold):
    """Agreement alone commits a guess two decodes are both unsure of; with ``confidence`` the
    guess waits until a decode is sure of the word, and a word no decode is sure of is made
    final by the pause after it, never lost; with ``unsure_hold``, by ``unsure_hold`` seconds
    of audio after it."""
    audio = script_audio(20, pause_every=5)
    ends = {f"w{k}": b for k, _, b in runs_of(audio)}
    chunk = 0.2
    online = OnlineProcessor(
        UnsureGuesser(7),
        min_chunk=chunk,
        confidence=confidence,
        unsure_hold=unsure_hold,
        vad=NonzeroVAD(),
        silence_flush=0.6,
    )
    emitted = simulate(online, audio)
    words = committed_text(emitted)
    if confidence:
        assert words == [f"w{k}" for k in range(20)]
        lag = {e.word.text.strip(): at - ends[e.word.text.strip()] for e, at in emitted}
        if unsure_hold:
            # before the pause: one chunk after the audio passed unsure_hold (and the fake's decode time)
            assert unsure_hold - 1e-6 <= lag["w7"] <= unsure_hold + chunk + 0.05
        else:
            assert lag["w7"] >= ends["w9"] - ends["w7"]  # held until the pause after its sentence...
        assert lag["w9"] < 0.6 + chunk + online.vad_frame + 1e-6  # ...which makes it final
    else:
        assert any(int(w[1:]) >= 500 for w in words)
    with pytest.raises(ValueError, match="confidence"):
        OnlineProcessor(FakeBackend(), confidence=1.0)
    with pytest.raises(ValueError, match="unsure_hold"):
        OnlineProcessor(FakeBackend(), unsure_hold=-1.0)
