"""Speaker-adaptive fine-tuning of compressed models: ``adapt_(model, teacher, target, ...)``.

Names load on first use, so the ``adaptwin`` command can build its parser without PyTorch.
"""

from importlib import import_module

_EXPORTS = {
    "AdaptConfig": ".config",
    "AdaptReport": ".core",
    "adapt_": ".core",
    "LoRALinear": ".lora",
    "inject_lora": ".lora",
    "merge_lora": ".lora",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'adaptwin.adapt' has no attribute {name!r}")
