"""What differs between transformers versions at the forward call, in one place.

transformers 5.2x renamed the forward's KV-cache argument ``past_key_values`` to ``cache`` (the old
name still works and warns that it goes away). Everything that feeds a cache asks :func:`cache_kwarg`
and reads it back with :func:`output_cache`.
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwarg(model: Any) -> str:
    """The forward's KV-cache argument name: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned (``out.cache`` or ``out.past_key_values``)."""
    return out["cache"] if "cache" in out else out["past_key_values"]
