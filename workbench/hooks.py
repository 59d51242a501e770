"""The hook engine: capture, patch, add and ablate at named sites, per batch row and token position.

Everything in workbench that reads or writes activations goes through :class:`Hooks`; nobody registers
raw torch hooks elsewhere. One context manager installs the hooks and always removes them, even when the
forward raises::

    with lm.hooks() as h:
        clean = h.capture("layers.3")                       # keep the activation
        h.patch("layers.5", source=cached, rows=[1, 2], positions=[4])   # write another run's values
        h.patch("layers.5", source_row=0, rows=[3], positions=[6])       # ... or this batch's row 0
        h.add("layers.2", steer, rows=[0], scale=4.0)        # steering vector
        h.ablate("layers.1.mlp", rows=[1], mode="zero")      # zero / mean ablation
        logits = lm.model(**batch).logits
    clean.value                                             # [B, T, d]

Selections: ``rows`` (batch rows; default all), ``positions`` (token positions shared by the selected
rows, or a bool mask ``[rows, T]``), or ``cells=(row_idx, pos_idx)`` (paired index tensors: one
(row, position) per entry, so that thousands of different single-cell patches run in one forward), and
``heads`` for per-head addressing of ``layers.{i}.attn.heads``. Interventions at one site apply in the
order they were registered; writes never modify a tensor in place that someone else holds (the
activation is cloned once before the first write), so captures registered earlier see the clean value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .errors import WorkbenchError

Index = int | Sequence[int] | torch.Tensor | None


@dataclasses.dataclass
class Captured:
    """Activations kept by :meth:`Hooks.capture`: one entry per forward pass through the site."""

    site: str
    values: list[torch.Tensor] = dataclasses.field(default_factory=list)
    grads: list[torch.Tensor] = dataclasses.field(default_factory=list)

    @property
    def value(self) -> torch.Tensor:
        """The activation of the last forward pass."""
        if not self.values:
            raise WorkbenchError(
                f"nothing captured at {self.site!r}: run a forward pass inside the hooks context"
            )
        return self.values[-1]

    @property
    def grad(self) -> torch.Tensor:
        """The gradient of the last backward pass w.r.t. the captured activation (``grad=True``)."""
        if not self.grads:
            raise WorkbenchError(
                f"no gradient captured at {self.site!r}: capture with grad=True and call backward()"
            )
        return self.grads[-1]


@dataclasses.dataclass
class _Intervention:
    kind: str  # capture | patch | add | ablate | edit
    rows: Index = None
    positions: Index = None
    cells: tuple[torch.Tensor, torch.Tensor] | None = None
    heads: Index = None
    value: torch.Tensor | None = None  # patch value / add vector / ablate mean
    source: torch.Tensor | None = None
    source_row: int | None = None
    scale: float = 1.0
    mode: str = "zero"
    fn: Callable | None = None
    captured: Captured | None = None
    detach: bool = True
    device: Any = None
    dtype: Any = None
    grad: bool = False


def _as_index(x: Index, n: int, device: torch.device) -> torch.Tensor:
    if x is None:
        return torch.arange(n, device=device)
    if isinstance(x, int):
        x = [x]
    t = torch.as_tensor(x, device=device, dtype=torch.long)
    if t.ndim != 1:
        raise WorkbenchError(f"expected a 1-D list of indices, got shape {tuple(t.shape)}")
    if len(t) and (int(t.max()) >= n or int(t.min()) < -n):
        raise WorkbenchError(f"index {t.tolist()} out of range for a dimension of size {n}")
    return t % n if len(t) else t


def _selection(iv: _Intervention, act: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, ...]:
    """Broadcastable advanced-index tensors for (rows, positions[, heads]) of ``act``."""
    B, T = act.shape[0], act.shape[1]
    dev = act.device
    if iv.cells is not None:
        r, p = (torch.as_tensor(c, device=dev, dtype=torch.long) for c in iv.cells)
        if r.shape != p.shape or r.ndim != 1:
            raise WorkbenchError("cells must be two 1-D index tensors of the same length (rows, positions)")
        if len(r) and (int(r.max()) >= B or int(p.max()) >= T):
            raise WorkbenchError(f"cells out of range for a batch of {B} rows and {T} positions")
    elif isinstance(iv.positions, torch.Tensor) and iv.positions.dtype == torch.bool:
        rows = _as_index(iv.rows, B, dev)
        mask = iv.positions.to(dev)
        if mask.shape != (len(rows), T):
            raise WorkbenchError(f"position mask must be [rows={len(rows)}, T={T}], got {tuple(mask.shape)}")
        ri, p = mask.nonzero(as_tuple=True)
        r = rows[ri]
    else:
        r = _as_index(iv.rows, B, dev)[:, None]
        p = _as_index(iv.positions, T, dev)[None, :]
        r, p = torch.broadcast_tensors(r, p)
    if iv.heads is None:
        return (r, p)
    h = _as_index(iv.heads, n_heads, dev)
    return (r[..., None], p[..., None], h.view(*([1] * r.ndim), -1))


class Hooks:
    """Context manager holding the interventions on one model; removes every hook on exit."""

    def __init__(self, lm: Any):
        self.lm = lm
        self._by_site: dict[str, list[_Intervention]] = {}
        self._handles: list[Any] = []
        self._specs: dict[str, Any] = {}

    # -- context ---------------------------------------------------------------------------------------
    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook and forget every intervention."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._by_site.clear()
        self._specs.clear()

    # -- public interventions --------------------------------------------------------------------------
    def capture(
        self,
        site: str,
        *,
        rows: Index = None,
        positions: Index = None,
        detach: bool = True,
        device: Any = None,
        dtype: Any = None,
        grad: bool = False,
    ) -> Captured:
        """Keep the activation at ``site`` (selected rows/positions) on every forward pass.

        ``grad=True`` keeps the live tensor and also records its gradient on backward (for attribution
        patching and RMU); ``device``/``dtype`` move the kept copy (e.g. ``device="cpu"``).
        """
        cap = Captured(site)
        self._add(
            site,
            _Intervention(
                "capture",
                rows=rows,
                positions=positions,
                captured=cap,
                detach=detach and not grad,
                device=device,
                dtype=dtype,
                grad=grad,
            ),
        )
        return cap

    def patch(
        self,
        site: str,
        *,
        value: torch.Tensor | None = None,
        source: torch.Tensor | None = None,
        source_row: int | None = None,
        rows: Index = None,
        positions: Index = None,
        cells: tuple | None = None,
        heads: Index = None,
    ) -> None:
        """Overwrite the selection at ``site``.

        Give exactly one of: ``value`` (broadcast into the selection), ``source`` (a full activation of
        another run, ``[B or 1, T, d]``, read at the same rows/positions), or ``source_row`` (this
        forward's own activation at that batch row, read at the same positions: ROME-style restoration
        of a clean row into corrupted rows in one pass).
        """
        if sum(x is not None for x in (value, source, source_row)) != 1:
            raise WorkbenchError("patch needs exactly one of value=, source= or source_row=")
        self._add(
            site,
            _Intervention(
                "patch",
                rows=rows,
                positions=positions,
                cells=cells,
                heads=heads,
                value=value,
                source=source,
                source_row=source_row,
            ),
        )

    def add(
        self,
        site: str,
        vector: torch.Tensor,
        *,
        scale: float = 1.0,
        rows: Index = None,
        positions: Index = None,
        cells: tuple | None = None,
        heads: Index = None,
    ) -> None:
        """Add ``scale * vector`` to the selection at ``site`` (activation steering)."""
        self._add(
            site,
            _Intervention(
                "add", rows=rows, positions=positions, cells=cells, heads=heads, value=vector, scale=scale
            ),
        )

    def ablate(
        self,
        site: str,
        *,
        mode: str = "zero",
        mean: torch.Tensor | None = None,
        rows: Index = None,
        positions: Index = None,
        cells: tuple | None = None,
        heads: Index = None,
    ) -> None:
        """Zero-ablate (``mode="zero"``) or mean-ablate (``mode="mean"``) the selection at ``site``.

        Mean ablation uses ``mean`` when given, else the mean of this forward's activation over batch
        and positions.
        """
        if mode not in ("zero", "mean"):
            raise WorkbenchError(f"unknown ablation mode {mode!r}; use 'zero' or 'mean'")
        self._add(
            site,
            _Intervention(
                "ablate", rows=rows, positions=positions, cells=cells, heads=heads, mode=mode, value=mean
            ),
        )

    def edit(
        self,
        site: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        rows: Index = None,
        positions: Index = None,
    ) -> None:
        """Replace the selection ``x`` at ``site`` with ``fn(x)`` (e.g. an SAE reconstruction)."""
        self._add(site, _Intervention("edit", rows=rows, positions=positions, fn=fn))

    # -- machinery -------------------------------------------------------------------------------------
    def _add(self, site: str, iv: _Intervention) -> None:
        if site not in self._by_site:
            spec = self.lm.site(site)
            module = self.lm.model.get_submodule(spec.module)
            self._by_site[site] = []
            self._specs[site] = spec
            if spec.io == "input":
                handle = module.register_forward_pre_hook(self._make_pre_hook(site), with_kwargs=True)
            else:
                handle = module.register_forward_hook(self._make_hook(site))
            self._handles.append(handle)
        if iv.heads is not None and not site.endswith(".attn.heads"):
            raise WorkbenchError(f"heads= applies to 'layers.{{i}}.attn.heads' sites, not {site!r}")
        self._by_site[site].append(iv)

    def _make_hook(self, site: str) -> Callable:
        def hook(module, args, output):
            act = output[0] if isinstance(output, tuple) else output
            new = self._run(site, act)
            if new is act:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook

    def _make_pre_hook(self, site: str) -> Callable:
        def hook(module, args, kwargs):
            if args:
                new = self._run(site, args[0])
                return None if new is args[0] else ((new, *args[1:]), kwargs)
            key = next(iter(kwargs))
            new = self._run(site, kwargs[key])
            return None if new is kwargs[key] else (args, {**kwargs, key: new})

        return hook

    def _run(self, site: str, act: torch.Tensor) -> torch.Tensor:
        orig = act
        for iv in self._by_site.get(site, ()):
            if iv.kind == "capture":
                self._capture(iv, act)
                continue
            if act is orig:
                act = act.clone()
            self._write(iv, act, orig)
        return act

    def _heads_view(self, t: torch.Tensor, heads: Index) -> torch.Tensor:
        if heads is None:
            return t
        n = self.lm.n_heads
        return t.view(*t.shape[:-1], n, t.shape[-1] // n)

    def _capture(self, iv: _Intervention, act: torch.Tensor) -> None:
        sel = act
        if iv.rows is not None or iv.positions is not None:
            sel = act[_selection(iv, act, self.lm.n_heads)]
        if iv.grad:
            if sel.requires_grad:
                sel.register_hook(iv.captured.grads.append)
            iv.captured.values.append(sel)
            return
        sel = sel.detach() if iv.detach else sel
        if iv.device is not None or iv.dtype is not None:
            sel = sel.to(device=iv.device, dtype=iv.dtype)
        iv.captured.values.append(sel)

    def _write(self, iv: _Intervention, act: torch.Tensor, orig: torch.Tensor) -> None:
        view = self._heads_view(act, iv.heads)
        idx = _selection(iv, act, self.lm.n_heads)
        if iv.kind == "patch":
            if iv.value is not None:
                new = iv.value.to(act.dtype)
            else:
                src = orig if iv.source is None else iv.source.to(device=act.device, dtype=act.dtype)
                if iv.source is not None and src.shape[1:] != act.shape[1:]:
                    raise WorkbenchError(
                        f"patch source shape {tuple(src.shape)} does not match the activation "
                        f"{tuple(act.shape)} at this site (same positions and width needed)"
                    )
                src_view = self._heads_view(src, iv.heads)
                r = idx[0]
                if iv.source_row is not None:
                    r = torch.full_like(r, iv.source_row)
                elif src.shape[0] == 1:
                    r = torch.zeros_like(r)
                elif src.shape[0] != act.shape[0]:
                    raise WorkbenchError(
                        f"patch source has {src.shape[0]} rows; expected 1 or {act.shape[0]}"
                    )
                new = src_view[(r, *idx[1:])]
        elif iv.kind == "add":
            new = view[idx] + iv.scale * iv.value.to(act.dtype)
        elif iv.kind == "ablate":
            if iv.mode == "zero":
                new = torch.zeros((), dtype=act.dtype, device=act.device)
            elif iv.value is not None:
                new = iv.value.to(act.dtype)
            else:
                new = self._heads_view(orig, iv.heads).mean(dim=(0, 1))
        else:
            new = iv.fn(view[idx])
        view[idx] = new


def run_with_cache(lm: Any, inputs: dict, sites: Sequence[str], **capture_kw: Any) -> tuple[Any, dict]:
    """One forward of ``lm.model(**inputs)``, returning (output, {site: activation}) for ``sites``."""
    with Hooks(lm) as h:
        caps = {s: h.capture(s, **capture_kw) for pattern in sites for s in lm.expand(pattern)}
        with torch.no_grad():
            out = lm.model(**inputs)
    return out, {s: c.value for s, c in caps.items()}
