"""Model loading and family adapters."""

from .families import FAMILIES, FamilyAdapter, SiteSpec, adapter_for
from .load import LoadedModel, load, wrap

__all__ = ["FAMILIES", "FamilyAdapter", "LoadedModel", "SiteSpec", "adapter_for", "load", "wrap"]
