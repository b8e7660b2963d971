"""``compress_(model, AdaPTwinConfig(...))``: factorize product twins in place and report."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Sequence

from torch import nn

from ..errors import InvalidInput
from ..models.modules import LowRankLinear, SplitHead, TwinAttention
from ..models.structure import FORMAT_VERSION, set_head, set_module
from . import surgery
from .allocate import Option, Unit, allocate, max_savings
from .calibrate import Calibration, output_error, relative_error, run, second_moments, swapped
from .config import AdaPTwinConfig
from .factorize import Factorization
from .latency import Dims, MatmulTimer, OrtTimer, unit_work, window_seconds
from .targets import (
    Site,
    check_whisper,
    count_parameters,
    find_attention,
    find_ffn,
    find_head,
    scope_modules,
)
from .vocab import kept_tokens

logger = logging.getLogger(__name__)

# units factorized as one thin pair (an FFN matrix, the vocabulary head), not as attention twins
THIN = ("ffn", "head")
PROBE_WINDOWS = 4  # calibration windows used to measure each unit's sensitivity


@dataclass(frozen=True)
class ModuleReport:
    name: str
    kind: str
    ranks: dict[str, int | None]  # twin ("qk", "vo", "ffn", "head") -> rank, None = left dense
    full: dict[str, int]  # twin -> full width (head width, or min(in, out) for FFN)
    params_before: int
    params_after: int
    rel_error: dict[str, float]  # twin -> relative reconstruction error (whitened when data-aware)


@dataclass(frozen=True)
class CompressionReport:
    modules: tuple[ModuleReport, ...]
    params_before: dict[str, int]  # encoder / decoder / total
    params_after: dict[str, int]
    data_aware: bool
    seconds: float
    output_error: float | None = None  # relative error of the scope's output on calibration data
    config: dict[str, Any] = field(default_factory=dict)
    time_ms: tuple[float, float] | None = None  # time budgets: the selected matmuls per window, before/after

    def removed(self, part: str = "encoder") -> float:
        return 1.0 - self.params_after[part] / self.params_before[part]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = [f"{'module':<42} {'ranks':<24} {'params':>19} {'rel.err':>14}"]
        for m in self.modules:
            ranks = " ".join(f"{k}={v if v is not None else 'dense'}/{m.full[k]}" for k, v in m.ranks.items())
            errs = " ".join(f"{v:.3f}" for v in m.rel_error.values())
            lines.append(f"{m.name:<42} {ranks:<24} {m.params_before:>9,}->{m.params_after:<9,} {errs:>14}")
        for part in ("encoder", "decoder", "total"):
            b, a = self.params_before[part], self.params_after[part]
            lines.append(f"{part:<8} {b:>12,} -> {a:>12,} params ({100 * (1 - a / b):.1f} % removed)")
        if self.time_ms is not None:
            b, a = self.time_ms
            less = 100 * (1 - a / b)
            lines.append(f"selected matmuls, measured: {b:.2f} -> {a:.2f} ms per window ({less:.1f} % less)")
        if self.output_error is not None:
            lines.append(f"output relative error on calibration data: {self.output_error:.4f}")
        lines.append(f"{'data-aware' if self.data_aware else 'data-free'}, {self.seconds:.1f} s")
        return "\n".join(lines)


def part_parameters(model: nn.Module) -> dict[str, int]:
    return {
        p: count_parameters(scope_modules(model, s))
        for p, s in (("encoder", "encoder"), ("decoder", "decoder"), ("total", "all"))
    }


def is_compressed(model: nn.Module) -> bool:
    return any(isinstance(m, (TwinAttention, LowRankLinear)) for m in model.modules())


def compress_(
    model: nn.Module,
    config: AdaPTwinConfig,
    calibration: Calibration | None = None,
    *,
    progress: bool = False,
    timer: MatmulTimer | None = None,
    token_prior: Sequence[int] | None = None,
) -> CompressionReport:
    """Compress ``model`` in place: joint per-head SVD of W_Q W_K^T and W_V W_O (optionally the
    FFN and the vocabulary head), data-aware when ``calibration`` is given, ranks explicit or
    allocated to a budget (parameters, or time measured by ``timer``: ONNX Runtime on this CPU
    by default). ``token_prior``: token ids, most frequent first, of which a split head
    (``config.head_keep``) keeps the first rows dense (``compress.token_prior(tokenizer)``)."""
    check_whisper(model)
    if is_compressed(model):
        raise InvalidInput("this model is already compressed: start again from the dense model")
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    before = part_parameters(model)
    attn_sites = find_attention(model, config.attention)
    sides = {"encoder": ("encoder",), "decoder": ("decoder",), "all": ("encoder", "decoder")}[config.scope]
    ffn_sites = find_ffn(model, sides) if config.ffn else []
    ffn_sites += find_head(model) if config.head else []
    sites = attn_sites + ffn_sites
    kept = _kept_rows(model, config, token_prior)

    moments = second_moments(model, calibration, sites) if calibration is not None else {}
    facts: dict[tuple[str, str], Factorization] = {}
    for site in _bar(attn_sites, progress, "factorizing"):
        attn = model.get_submodule(site.name)
        for twin, fact in surgery.attention_twins(attn, moments, site.name, config.twins, config.damping).items():
            facts[(site.name, twin)] = fact
    for site in _bar(ffn_sites, progress, "splitting FFN"):
        module = model.get_submodule(site.name)
        if site.kind == "head" and kept is not None:
            facts[(site.name, site.kind)] = surgery.head_split(module, kept, moments, site.name, config.damping)
        else:
            facts[(site.name, site.kind)] = surgery.linear_split(module, moments, site.name, config.damping)

    reference = None
    decoder_metric = any(s.side == "decoder" for s in sites)
    if calibration is not None:
        reference = run(model, calibration.subset(PROBE_WINDOWS), decoder_metric)
    time_ms = None
    if config.budget is not None or config.max_ms is not None:
        units = _units(model, config, facts, sites, timer)
        ranks = _budget_ranks(model, config, units, facts, calibration, reference, decoder_metric, before, progress)
        if config.budget_by == "time":
            chosen = [next(o for o in u.options if o.rank == ranks[u.key]) for u in units]
            time_ms = (1e3 * sum(u.options[-1].seconds for u in units), 1e3 * sum(o.seconds for o in chosen))
    else:
        ranks = _explicit_ranks(config, sites, facts)

    reports = _apply(model, sites, facts, ranks)
    model.config.adaptwin = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "attention": {m.name: {k: m.ranks.get(k) for k in ("qk", "vo")} for m in reports if m.kind not in THIN},
        "ffn": {m.name: m.ranks["ffn"] for m in reports if m.kind == "ffn"},
        "head": next((m.ranks["head"] for m in reports if m.kind == "head"), None),
        "head_kept": head_kept(model),
    }
    out_err = None
    if reference is not None:
        out_err = relative_error(run(model, calibration.subset(PROBE_WINDOWS), decoder_metric), reference)
    model.train(was_training)
    report = CompressionReport(
        tuple(reports),
        before,
        part_parameters(model),
        calibration is not None,
        time.perf_counter() - start,
        out_err,
        config.to_dict(),
        time_ms,
    )
    logger.info(
        "compressed %s: %.1f %% of the encoder, %.1f %% of the decoder removed in %.1f s",
        config.scope,
        100 * report.removed("encoder"),
        100 * report.removed("decoder"),
        report.seconds,
    )
    return report


def _kept_rows(model, config, token_prior):
    """The token ids a split head keeps dense, or None for a head that is one low-rank pair."""
    if not (config.head and config.head_keep):
        return None
    if token_prior is None:
        raise InvalidInput(
            f"head_keep={config.head_keep} keeps the most frequent tokens' rows dense and needs their ranking: pass "
            "token_prior=adaptwin.compress.token_prior(processor.tokenizer), or head_keep=0 for one low-rank pair"
        )
    vocab = model.proj_out.out_features
    kept = kept_tokens(token_prior, config.head_keep, vocab, model.config.eos_token_id)
    if len(kept) >= vocab:
        raise InvalidInput(f"head_keep={config.head_keep} keeps every row of the {vocab}-token head: ask for fewer")
    return kept


def head_kept(model: nn.Module) -> int | None:
    head = getattr(model, "proj_out", None)
    return head.num_kept if isinstance(head, SplitHead) else None


def _bar(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


def _unit_options(model: nn.Module, name: str, twin: str, fact: Factorization, config: AdaPTwinConfig) -> list[Option]:
    module = model.get_submodule(name)
    if twin in THIN:
        dense = sum(p.numel() for p in module.parameters())
        step = config.ffn_rank_step
        opts = [
            Option(r, surgery.thin_params(module, fact, r), fact.rel_error(r))
            for r in range(step, fact.full_rank, step)
        ]
        opts = [o for o in opts if o.params < dense]
    else:
        dense = surgery.dense_twin_params(module, twin)
        step = config.rank_step
        opts = [
            Option(r, surgery.twin_params(module, twin, r), fact.rel_error(r))
            for r in range(step, fact.full_rank, step)
        ]
    return opts + [Option(None, dense, 0.0)]


@contextmanager
def _probed(model: nn.Module, name: str, twin: str, fact: Factorization, rank: int) -> Iterator[None]:
    """The model with one unit at ``rank``, as ``compress_`` would build it: a head probe replaces
    the token lookup too, since the factored head serves both and the lookup's error feeds
    every decoder layer."""
    module = model.get_submodule(name)
    if twin == "ffn":
        new = surgery.build_low_rank(module, fact, rank)
    elif twin == "head":
        out, lookup = model.proj_out, model.model.decoder.embed_tokens
        set_head(model, surgery.build_thin(module, fact, rank))
        try:
            yield
        finally:
            model.proj_out, model.model.decoder.embed_tokens = out, lookup
        return
    else:
        new = surgery.build_twin_attention(
            module, {twin: fact}, rank if twin == "qk" else None, rank if twin == "vo" else None
        )
    with swapped(model, name, new):
        yield


def _units(model, config, facts, sites: list[Site], timer: MatmulTimer | None) -> list[Unit]:
    units = [Unit(key, _unit_options(model, key[0], key[1], fact, config)) for key, fact in facts.items()]
    if config.budget_by == "time":
        timer = timer or OrtTimer()
        dims, site_of = Dims.of(model), {s.name: s for s in sites}
        for unit in units:
            (name, twin), site = unit.key, site_of[unit.key[0]]
            module = model.get_submodule(name)
            fact = facts[unit.key]
            kept = len(fact.kept) if isinstance(fact, surgery.HeadSplit) else 0
            unit.options = [
                replace(
                    o,
                    seconds=window_seconds(
                        unit_work(site.kind, site.side, twin, o.rank, module, dims, kept),
                        timer,
                        config.tokens_per_window,
                    ),
                )
                for o in unit.options
            ]
    return units


def _budget_ranks(model, config, units, facts, calibration, reference, decoder_metric, before, progress):
    if config.budget_by == "time":
        return _time_ranks(model, config, units, facts, calibration, reference, decoder_metric, progress)
    part = {"encoder": "encoder", "decoder": "decoder", "all": "total"}[config.scope]
    target = int(round(config.budget * before[part]))
    possible = max_savings(units)
    if target > possible:
        hint = (
            " Add the FFN (--ffn / ffn=True): it holds most of each layer's parameters."
            if not config.ffn
            else " Lower the budget or widen the scope."
        )
        raise InvalidInput(
            f"budget {config.budget:.0%} of the {part} ({target:,} parameters) cannot be met: even at the "
            f"smallest ranks the selected modules ({_selected(config)}) free at most {possible:,} "
            f"({possible / before[part]:.1%}).{hint}"
        )
    _measure_gains(model, config, units, facts, calibration, reference, decoder_metric, progress)
    return allocate(units, target)


def _selected(config) -> str:
    thin = (", ffn" if config.ffn else "") + (", head" if config.head else "")
    return f"{', '.join(config.attention)}{thin}; twins {'/'.join(config.twins)}"


def _time_ranks(model, config, units, facts, calibration, reference, decoder_metric, progress):
    """Ranks for a budget in measured time: a fraction of the selected matmuls' time, or ``max_ms``."""
    total = sum(u.options[-1].seconds for u in units)
    target = config.budget * total if config.budget is not None else total - config.max_ms / 1e3
    possible = max_savings(units, "seconds")
    logger.info("selected matmuls take %.2f ms per window; %.2f ms to save", 1e3 * total, 1e3 * max(target, 0.0))
    if target <= 0:
        return {u.key: None for u in units}  # already within max_ms
    if target > possible:
        raise InvalidInput(
            f"the time budget cannot be met: the selected modules ({_selected(config)}) take {1e3 * total:.2f} ms "
            f"per window on this CPU (ONNX Runtime) and at the smallest ranks at least {1e3 * (total - possible):.2f} "
            f"ms; ask for less (max_ms/budget) or select more modules (--ffn, --scope all, --head)"
        )
    _measure_gains(model, config, units, facts, calibration, reference, decoder_metric, progress)
    return allocate(units, target, "seconds")


def _measure_gains(model, config, units, facts, calibration, reference, decoder_metric, progress) -> None:
    if calibration is not None:  # measured sensitivity: model-output error per unit of local error
        sub = calibration.subset(PROBE_WINDOWS)
        for unit in _bar(units, progress, "measuring sensitivity"):
            name, twin = unit.key
            probe = unit.options[max(0, len(unit.options) // 2 - 1)]
            with _probed(model, name, twin, facts[unit.key], probe.rank):
                err = output_error(run(model, sub, decoder_metric), reference, config.probe)
            unit.gain = err / max(probe.error, 1e-8)
            logger.debug("sensitivity %s/%s: output %.4f at local %.4f", name, twin, err, probe.error)


def _explicit_ranks(config, sites, facts):
    ranks: dict[tuple[str, str], int | None] = {}
    uniform = {"qk": config.rank_qk, "vo": config.rank_vo, "ffn": config.rank_ffn, "head": config.rank_head}
    for name, twin in facts:
        ranks[(name, twin)] = uniform[twin]
    names = [s.name for s in sites]
    for key, per_twin in config.ranks.items():
        matches = [n for n in names if n == key or n.endswith("." + key)]
        if not matches:
            raise InvalidInput(f"ranks names {key!r}, which matches no selected module; candidates: {names[:6]} ...")
        for n in matches:
            for twin, r in per_twin.items():
                if (n, twin) not in facts:
                    raise InvalidInput(f"ranks[{key!r}] sets {twin!r}, which is not selected for {n}")
                ranks[(n, twin)] = r
    for (name, twin), r in ranks.items():
        full = facts[(name, twin)].full_rank
        if r is not None and not 1 <= r <= full:
            raise InvalidInput(
                f"rank {r} for {twin} of {name} is impossible: it must lie in 1..{full} "
                f"({'the head width' if twin not in THIN else 'min(in, out)'})"
            )
    return ranks


def _apply(model, sites: list[Site], facts, ranks) -> list[ModuleReport]:
    reports = []
    for site in sites:
        module = model.get_submodule(site.name)
        before = sum(p.numel() for p in module.parameters())
        if site.kind in THIN:
            kind = site.kind
            fact, r = facts[(site.name, kind)], ranks.get((site.name, kind))
            if r is not None:
                new = surgery.build_thin(module, fact, r)
                if kind == "head":
                    set_head(model, new)  # the output projection and the token lookup
                else:
                    set_module(model, site.name, new)
            after = sum(p.numel() for p in model.get_submodule(site.name).parameters())
            reports.append(
                ModuleReport(
                    site.name,
                    kind,
                    {kind: r},
                    {kind: fact.full_rank},
                    before,
                    after,
                    {kind: fact.rel_error(r) if r else 0.0},
                )
            )
            continue
        twins = {t: facts[(site.name, t)] for t in ("qk", "vo") if (site.name, t) in facts}
        r = {t: ranks.get((site.name, t)) for t in twins}
        if any(v is not None for v in r.values()):
            set_module(model, site.name, surgery.build_twin_attention(module, twins, r.get("qk"), r.get("vo")))
        after = sum(p.numel() for p in model.get_submodule(site.name).parameters())
        reports.append(
            ModuleReport(
                site.name,
                site.kind,
                r,
                {t: f.full_rank for t, f in twins.items()},
                before,
                after,
                {t: (f.rel_error(r[t]) if r[t] else 0.0) for t, f in twins.items()},
            )
        )
    return reports
