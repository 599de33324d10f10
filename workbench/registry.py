"""The hook registry: one mechanism that reads (probes) and edits (steers) activations.

Every later module (concept vectors, SAE features, lenses, patching) goes through ``HookRegistry``.
It installs at most one PyTorch forward hook per site, only while active, and always removes it:
hooks are registered inside an ``ExitStack`` whose removal callback is scheduled the moment each
handle exists, so an exception anywhere (in the model, an edit, or user code) leaves no hook behind.

At each site the order is fixed: probes with ``when="before"``, then steers in registration order,
then probes with ``when="after"``. Positions are absolute and unpadded (see ``positions.py``), and
stay right under left padding and KV-cached generation because ``run``/``generate`` tell the
registry which columns each forward chunk covers.

This module is longer than 400 lines on purpose: the registry is one stateful shell whose registration,
activation, position bookkeeping and hook share private state; split, that state would leak across modules.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .backends import as_backend
from .edits import Edit, EditContext
from .generation import SamplingConfig, decode_loop
from .positions import Positions, PositionSpec, resolve_positions
from .sites import Site, SiteLike
from .tokens import Batch, pad_token_id, tokenize
from .validation import check_bool, check_choice, check_int

Reduce = Optional[Literal["mean", "last"]]
When = Literal["before", "after"]


class _StopForward(Exception):
    """Raised from a hook to end a probe-only forward pass once every probe has read."""


@dataclass
class _Probe:
    name: str
    site: Site
    positions: Positions
    reduce: Reduce
    when: When
    detach: bool
    device: Optional[str]
    enabled: bool = True
    kind: str = field(default="probe", init=False)


@dataclass
class _Steer:
    name: str
    site: Site
    positions: Positions
    edit: Edit
    enabled: bool = True
    kind: str = field(default="steer", init=False)


class _Recorder:
    """Accumulates one probe's reads over the forward chunks of a run."""

    def __init__(self, reduce: Reduce) -> None:
        self.reduce = reduce
        self.rows: Optional[list[list[Tensor]]] = None  # reduce=None: per row, chunks of [n, ...]
        self.sum: Optional[Tensor] = None
        self.count: Optional[Tensor] = None
        self.last: Optional[Tensor] = None
        self.seen: Optional[Tensor] = None

    def add(self, acts: Tensor, mask: Tensor) -> None:
        """``acts`` has positions on dim 1 and ``mask`` is ``[batch, pos]``."""
        batch = acts.shape[0]
        if self.reduce is None:
            if self.rows is None:
                self.rows = [[] for _ in range(batch)]
            for b in range(batch):
                if mask[b].any():
                    self.rows[b].append(acts[b][mask[b]])
        elif self.reduce == "mean":
            m = mask.to(acts.dtype).view(*mask.shape, *([1] * (acts.ndim - 2)))
            s = (acts * m).sum(1)
            c = mask.sum(1)
            self.sum = s if self.sum is None else self.sum + s
            self.count = c if self.count is None else self.count + c
        else:  # last selected position per row
            has = mask.any(1)
            idx = (mask.long() * torch.arange(mask.shape[1], device=mask.device)).argmax(1)
            picked = acts[torch.arange(batch, device=acts.device), idx]
            if self.last is None:
                self.last, self.seen = picked, has
            elif picked.shape != self.last.shape:
                # Attention patterns grow by one key per generation step: a chunk that gives every row
                # a newer last position replaces the older reads; otherwise they cannot be combined.
                if not bool(has.all()):
                    raise ValueError(
                        f"reduce='last' read chunks of different shapes {tuple(self.last.shape[1:])} and "
                        f"{tuple(picked.shape[1:])} for rows {torch.nonzero(~has).flatten().tolist()} that "
                        "selected no new position; probe the finished sequence with reg.run instead"
                    )
                self.last, self.seen = picked, has
            else:
                keep = has.view(-1, *([1] * (picked.ndim - 1)))
                self.last = torch.where(keep, picked, self.last)
                self.seen = self.seen | has

    def value(self, name: str) -> Union[Tensor, list[Tensor]]:
        if self.reduce is None:
            if self.rows is None:
                raise KeyError(f"probe '{name}' has not recorded anything yet")
            try:
                per_row = [torch.cat(r, 0) if r else None for r in self.rows]
            except RuntimeError:
                shapes = sorted({tuple(c.shape[1:]) for r in self.rows for c in r})
                raise ValueError(
                    f"probe '{name}' read chunks of different shapes {shapes} (attention patterns grow with the "
                    "sequence during generation); use reduce='last', or probe the finished sequence with reg.run"
                ) from None
            if any(r is None for r in per_row):
                empty = [i for i, r in enumerate(per_row) if r is None]
                raise ValueError(f"probe '{name}' selected no position in rows {empty}")
            if len({r.shape[0] for r in per_row}) == 1:
                return torch.stack(per_row, 0)
            return per_row  # rows selected different numbers of positions
        if self.reduce == "mean":
            if self.sum is None:
                raise KeyError(f"probe '{name}' has not recorded anything yet")
            if (self.count == 0).any():
                raise ValueError(
                    f"probe '{name}' selected no position in rows {torch.nonzero(self.count == 0).flatten().tolist()}"
                )
            return self.sum / self.count.view(-1, *([1] * (self.sum.ndim - 1))).to(self.sum.dtype)
        if self.last is None:
            raise KeyError(f"probe '{name}' has not recorded anything yet")
        if not self.seen.all():
            raise ValueError(
                f"probe '{name}' selected no position in rows {torch.nonzero(~self.seen).flatten().tolist()}"
            )
        return self.last


class Records(Mapping):
    """Read-only view of what the probes recorded: ``records[name]`` is a tensor
    (``[batch, n_positions, ...]`` without reduction, ``[batch, ...]`` with ``"mean"``/``"last"``)."""

    def __init__(self) -> None:
        self._rec: dict[str, _Recorder] = {}

    def __getitem__(self, name: str):
        if name not in self._rec:
            known = ", ".join(self._rec) or "none yet"
            raise KeyError(f"no record named '{name}'; recorded: {known}")
        return self._rec[name].value(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rec)

    def __len__(self) -> int:
        return len(self._rec)

    def clear(self) -> None:
        self._rec.clear()


@dataclass
class _ChunkInfo:
    abs_pos: Tensor
    seq_len: Tensor
    prompt_len: Tensor


@dataclass(frozen=True)
class Generation:
    """Result of ``HookRegistry.generate``: prompt + new tokens (left-padded), texts, optional logits."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    prompt_lengths: Int[Tensor, " batch"]
    new_tokens: Int[Tensor, "batch new"]
    completions: list[str]
    prompts: list[str]
    logits: Optional[Float[Tensor, "batch new d_vocab"]] = None


class HookRegistry:
    """Probes and steers on one HookedTransformer or TransformerBridge, active only inside ``with reg:``.

    >>> reg = HookRegistry(model)
    >>> reg.probe("h12", "resid_post.12", reduce="last")
    >>> reg.steer("joy", "resid_post.6", AddVector(v, 4.0), positions="all")
    >>> out = reg.generate("I think", max_new_tokens=20)
    """

    def __init__(self, model) -> None:
        self.model = model
        self.backend = as_backend(model)  # HookedTransformer or TransformerBridge (TypeError otherwise)
        self._entries: OrderedDict[str, Union[_Probe, _Steer]] = OrderedDict()
        self.records = Records()
        self._stack: Optional[contextlib.ExitStack] = None
        self._installed: dict[str, object] = {}
        # Position bookkeeping of the current forward chunk (set by run/generate; default: fresh,
        # unpadded sequence).
        self._attention_mask: Optional[Tensor] = None
        self._offset = 0
        self._prompt_len: Optional[Tensor] = None
        self._step: Optional[int] = None
        self._chunk_cache: dict[tuple, _ChunkInfo] = {}
        self._stop_after: Optional[set] = None
        self._fired: set = set()

    # ---------------------------------------------------------------- registration
    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a probe or steer needs a non-empty string name, got {name!r}")
        if name in self._entries:
            raise ValueError(
                f"name '{name}' is already registered (as a {self._entries[name].kind}); "
                "remove it first or pick another"
            )

    def _site(self, site: SiteLike) -> Site:
        return Site.parse(site, self.model)

    def probe(
        self,
        name: str,
        site: SiteLike,
        *,
        positions: PositionSpec = "all",
        reduce: Reduce = None,
        when: When = "after",
        detach: bool = True,
        device: Optional[str] = None,
    ) -> "HookRegistry":
        """Record activations at ``site`` into ``records[name]``.

        ``reduce``: None keeps every selected position, ``"mean"`` averages them, ``"last"`` keeps the
        last one per row. ``when`` reads before or after the steers at the same site. ``detach=False``
        keeps the autograd graph (for gradients w.r.t. activations)."""
        self._check_name(name)
        if reduce not in (None, "mean", "last"):
            raise ValueError(f"reduce must be None, 'mean' or 'last', got {reduce!r}")
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        check_bool("detach", detach)
        if device is not None:
            try:
                torch.device(device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None
        entry = _Probe(name, self._site(site), Positions.parse(positions), reduce, when, detach, device)
        self._entries[name] = entry
        self._install_if_active(entry.site)
        return self

    def steer(self, name: str, site: SiteLike, edit: Edit, *, positions: PositionSpec = "all") -> "HookRegistry":
        """Edit activations at ``site``: ``edit(acts, ctx)`` returns new values (never in place);
        they replace the activation at the selected positions only."""
        self._check_name(name)
        if not callable(edit):
            raise TypeError(f"edit must be callable (acts, ctx) -> acts, got {type(edit).__name__}")
        entry = _Steer(name, self._site(site), Positions.parse(positions), edit)
        self._entries[name] = entry
        self._install_if_active(entry.site)
        return self

    def _get(self, name: str):
        if name not in self._entries:
            import difflib

            close = difflib.get_close_matches(name, list(self._entries), n=3)
            raise KeyError(
                f"nothing registered as '{name}'"
                + (
                    f"; did you mean {', '.join(close)}?"
                    if close
                    else f"; registered: {', '.join(self._entries) or 'none'}"
                )
            )
        return self._entries[name]

    def enable(self, name: str) -> None:
        self._get(name).enabled = True

    def disable(self, name: str) -> None:
        self._get(name).enabled = False

    def remove(self, name: str) -> None:
        self._get(name)
        del self._entries[name]
        self.records._rec.pop(name, None)

    def clear(self) -> None:
        """Remove every probe and steer (and their records)."""
        self._entries.clear()
        self.records.clear()

    @contextlib.contextmanager
    def only(self, *names: str):
        """Temporarily enable just ``names`` (everything else disabled)."""
        for n in names:
            self._get(n)
        saved = {n: e.enabled for n, e in self._entries.items()}
        try:
            for n, e in self._entries.items():
                e.enabled = n in names
            yield self
        finally:
            for n, e in self._entries.items():
                if n in saved:
                    e.enabled = saved[n]

    def describe(self):
        """A table (pandas DataFrame) of what is registered, in application order per site. Its
        ``attrs["backend"]`` names the model type and ``attrs["paths"]`` says which path each fast path
        (generation, patching restarts, early stop) takes on it, and why (``workbench.backends``)."""
        import pandas as pd

        rows = []
        for order, e in enumerate(self._entries.values()):
            rows.append(
                {
                    "name": e.name,
                    "kind": e.kind,
                    "site": e.site.short,
                    "hook": e.site.hook_name,
                    "positions": str(e.positions),
                    "detail": (f"reduce={e.reduce}, when={e.when}" if e.kind == "probe" else repr(e.edit)),
                    "enabled": e.enabled,
                    "order": order,
                }
            )
        table = pd.DataFrame(rows, columns=["name", "kind", "site", "hook", "positions", "detail", "enabled", "order"])
        table.attrs["backend"] = self.backend.name
        table.attrs["paths"] = self.backend.paths()
        return table

    def __repr__(self) -> str:
        n_p = sum(e.kind == "probe" for e in self._entries.values())
        return f"HookRegistry({n_p} probes, {len(self._entries) - n_p} steers, active={self.is_active})"

    # ---------------------------------------------------------------- activation
    @property
    def is_active(self) -> bool:
        return self._stack is not None

    def _module(self, site: Site):
        module = self.backend.hook_module(site.hook_name)
        if module is None:
            site.check(self.model)
            raise KeyError(f"site '{site.short}' has no hook module '{site.hook_name}' on this model")
        return module

    def _install_if_active(self, site: Site) -> None:
        if self._stack is not None and site.hook_name not in self._installed:
            self._install(site)

    def _install(self, site: Site) -> None:
        handle = self.backend.add_hook(self._module(site), self._make_hook(site))
        # Removal is scheduled the moment the handle exists.
        self._stack.callback(handle.remove)
        self._stack.callback(self._installed.pop, site.hook_name, None)
        self._installed[site.hook_name] = handle

    @contextlib.contextmanager
    def active(self, *, clear_records: bool = True):
        """Activate every registered probe and steer for the duration of the block."""
        if self._stack is not None:
            raise RuntimeError("this HookRegistry is already active; nest the work inside the existing 'with' block")
        if clear_records:
            self.records.clear()
        with contextlib.ExitStack() as stack:
            self._stack = stack
            stack.callback(setattr, self, "_stack", None)
            stack.callback(self._reset_context)
            for site in {e.site for e in self._entries.values()}:
                self._install(site)
            yield self

    def __enter__(self) -> "HookRegistry":
        if self._stack is not None:
            raise RuntimeError("this HookRegistry is already active; nest the work inside the existing 'with' block")
        self._cm = self.active()
        return self._cm.__enter__()

    def __exit__(self, *exc):
        cm, self._cm = self._cm, None
        return cm.__exit__(*exc)

    # ---------------------------------------------------------------- position bookkeeping
    def _reset_context(self) -> None:
        self._attention_mask, self._offset, self._prompt_len, self._step = None, 0, None, None
        self._chunk_cache.clear()

    def _set_context(
        self, attention_mask: Optional[Tensor], offset: int, prompt_len: Optional[Tensor], step: Optional[int]
    ) -> None:
        self._attention_mask, self._offset, self._prompt_len, self._step = attention_mask, offset, prompt_len, step
        self._chunk_cache.clear()

    def _chunk(self, batch: int, n: int, device) -> _ChunkInfo:
        key = (batch, n)
        info = self._chunk_cache.get(key)
        if info is not None:
            return info
        if self._attention_mask is None:
            abs_pos = torch.arange(n, device=device).expand(batch, n)
            seq_len = torch.full((batch,), n, device=device)
        else:
            m = self._attention_mask.to(device)
            if m.shape[0] != batch or m.shape[1] < self._offset + n:
                raise RuntimeError(
                    f"position bookkeeping does not fit this forward: mask {tuple(m.shape)}, offset {self._offset}, "
                    f"chunk of {n} positions for batch {batch}"
                )
            cum = m.cumsum(1) - 1
            cols = slice(self._offset, self._offset + n)
            abs_pos = torch.where(m[:, cols] > 0, cum[:, cols], torch.full_like(cum[:, cols], -1))
            seq_len = m[:, : self._offset + n].sum(1)
        prompt_len = self._prompt_len.to(device) if self._prompt_len is not None else seq_len
        info = _ChunkInfo(abs_pos, seq_len, prompt_len)
        self._chunk_cache[key] = info
        return info

    # ---------------------------------------------------------------- the hook
    def _make_hook(self, site: Site) -> Callable:
        pos_dim = site.pos_dim

        def hook(module, inputs, output):
            entries = [e for e in self._entries.values() if e.site == site and e.enabled]
            if not entries or not isinstance(output, Tensor):
                return None
            acts = output
            info = self._chunk(acts.shape[0], acts.shape[pos_dim], acts.device)
            masks: dict[int, Tensor] = {}

            def mask_for(p: Positions) -> Tensor:
                if id(p) not in masks:
                    masks[id(p)] = resolve_positions(p, info.abs_pos, info.seq_len, info.prompt_len)
                return masks[id(p)]

            def record(probe: _Probe, a: Tensor) -> None:
                rec = self.records._rec.setdefault(probe.name, _Recorder(probe.reduce))
                x = a if pos_dim == 1 else a.movedim(pos_dim, 1)
                if probe.detach:
                    x = x.detach()
                if probe.device is not None:
                    x = x.to(probe.device)
                rec.add(x, mask_for(probe.positions).to(x.device))

            for e in entries:
                if e.kind == "probe" and e.when == "before":
                    record(e, acts)
            changed = False
            for e in entries:
                if e.kind != "steer":
                    continue
                mask = mask_for(e.positions)
                if not bool(mask.any()):
                    continue
                # Inference-mode tensors (TransformerLens' generate) have no version counter.
                version = None if acts.is_inference() else acts._version
                ptr = acts.data_ptr()
                ctx = EditContext(site, mask, info.abs_pos, info.seq_len, info.prompt_len, self._step)
                new = e.edit(acts, ctx)
                if (version is not None and acts._version != version) or (
                    isinstance(new, Tensor) and new.data_ptr() == ptr
                ):
                    raise RuntimeError(
                        f"steer '{e.name}': its edit changed the activations in place; an edit must return new values"
                    )
                if not isinstance(new, Tensor) or new.shape != acts.shape:
                    got = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
                    raise ValueError(
                        f"steer '{e.name}': its edit returned {got}, but the activations at {site} have shape "
                        f"{tuple(acts.shape)}"
                    )
                shape = [1] * acts.ndim
                shape[0], shape[pos_dim] = mask.shape[0], mask.shape[1]
                acts = torch.where(mask.view(shape), new.to(acts.dtype), acts)
                changed = True
            for e in entries:
                if e.kind == "probe" and e.when == "after":
                    record(e, acts)
            if self._stop_after is not None:
                self._fired.add(site.hook_name)
                if self._stop_after <= self._fired:
                    raise _StopForward()
            return acts if changed else None

        return hook

    # ---------------------------------------------------------------- running
    def _enabled(self, kind: str) -> list:
        return [e for e in self._entries.values() if e.enabled and e.kind == kind]

    def _stop_layer(self) -> Optional[int]:
        """The ``stop_at_layer`` that still reaches every enabled probe (None = full model)."""
        deepest = 0
        for p in self._enabled("probe"):
            if p.site.layer is not None:
                deepest = max(deepest, p.site.layer + 1)
            elif not p.site.stream.startswith(("embed", "pos_embed", "tokens")):
                return None
        return deepest

    def _reads_unembed(self) -> bool:
        """A probe reads inside the unembedding, so a probe-only run still has to unembed."""
        return any(p.site.layer is None and p.site.stream.startswith("unembed") for p in self._enabled("probe"))

    def as_batch(self, inputs, padding_side: str = "left") -> Batch:
        """Texts (tokenised, padded on ``padding_side``), a ``Batch``, or token ids ``[pos]``/``[batch, pos]``
        (unpadded; ids must lie in ``[0, d_vocab)``)."""
        check_choice("padding_side", padding_side, ("left", "right"))
        if isinstance(inputs, Batch):
            return inputs
        if isinstance(inputs, (str, list, tuple)) and (
            isinstance(inputs, str) or all(isinstance(t, str) for t in inputs)
        ):
            return tokenize(self.model, inputs, padding_side=padding_side)
        try:
            tokens = torch.as_tensor(inputs)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"inputs must be texts, a Batch or token ids, got {type(inputs).__name__}: {e}") from None
        if tokens.ndim == 1:
            tokens = tokens[None]
        if tokens.ndim != 2 or tokens.numel() == 0:
            raise ValueError(f"token ids must have shape [pos] or [batch, pos], got {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise TypeError(f"token ids must be integers, got dtype {tokens.dtype}")
        d_vocab = self.model.cfg.d_vocab
        if int(tokens.min()) < 0 or int(tokens.max()) >= d_vocab:
            raise ValueError(
                f"token ids must lie in [0, {d_vocab}) (cfg.d_vocab), got ids from {int(tokens.min())} to "
                f"{int(tokens.max())}"
            )
        return Batch(tokens.long(), torch.ones_like(tokens, dtype=torch.long))

    def run(
        self,
        inputs: Union[str, Sequence[str], Tensor, Batch],
        *,
        attention_mask: Optional[Tensor] = None,
        need_logits: Optional[bool] = None,
        padding_side: str = "left",
    ) -> Optional[Float[Tensor, "batch pos d_vocab"]]:
        """One forward pass with everything registered active; returns logits, or None when only
        probes are enabled and ``need_logits`` is not set, in which case the pass stops as soon as
        the deepest probe has read (``stop_at_layer`` plus an early exit inside the block)."""
        if need_logits is not None:
            check_bool("need_logits", need_logits)
        batch = self.as_batch(inputs, padding_side)
        mask = attention_mask if attention_mask is not None else batch.attention_mask
        if not isinstance(mask, Tensor) or mask.shape != batch.tokens.shape:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"attention_mask has shape {got} but tokens have shape {tuple(batch.tokens.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
        probes_only = not self._enabled("steer")
        want_logits = need_logits if need_logits is not None else not probes_only
        stop = None if want_logits else self._stop_layer()
        with contextlib.ExitStack() as stack:
            if not self.is_active:
                stack.enter_context(self.active())
            else:
                self.records.clear()
            self._set_context(mask, 0, None, None)
            stack.callback(self._set_context, None, 0, None, None)
            if not want_logits:
                self._stop_after = {p.site.hook_name for p in self._enabled("probe")}
                self._fired = set()
                stack.callback(setattr, self, "_stop_after", None)
            try:
                out = self.backend.forward(
                    batch.tokens.to(self.model.cfg.device),
                    attention_mask=mask.to(self.model.cfg.device),
                    stop_at_layer=stop,
                    return_type="logits" if want_logits or self._reads_unembed() else None,
                )
            except _StopForward:
                return None
            return out if want_logits else None

    def generate(
        self,
        prompts: Union[str, Sequence[str], Tensor, Batch],
        max_new_tokens: int = 32,
        *,
        temperature: float = 0.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        seed: int = 0,
        stop_at_eos: bool = True,
        return_logits: bool = False,
        progress: bool = False,
    ) -> Generation:
        """KV-cached generation with every probe and steer active and positions kept absolute:
        ``"prompt"``, ``"generated"``, ``"last"`` and index specs mean the same at every step as in a
        single forward over the whole sequence. Prompts are left-padded; each row keeps its own
        positions."""
        check_int("max_new_tokens", max_new_tokens, min=1)
        for flag, value in (("stop_at_eos", stop_at_eos), ("return_logits", return_logits), ("progress", progress)):
            check_bool(flag, value)
        sampling = SamplingConfig(temperature, top_k, top_p, seed)
        batch = self.as_batch([prompts] if isinstance(prompts, str) else prompts, "left")
        if batch.padding_side == "right" and not bool((batch.attention_mask == 1).all()):
            raise ValueError(
                "generate needs left-padded prompts (pass strings, or a Batch from tokenize(..., padding_side='left'))"
            )
        prompt_len = batch.lengths
        tok = self.model.tokenizer
        eos = tok.eos_token_id if (stop_at_eos and tok is not None) else None
        pad = pad_token_id(self.model)

        def before_chunk(full_mask: Tensor, offset: int, step: int) -> None:
            self._set_context(full_mask, offset, prompt_len, step)

        with contextlib.ExitStack() as stack:
            if not self.is_active:
                stack.enter_context(self.active())
            stack.callback(self._set_context, None, 0, None, None)
            with torch.no_grad():
                new, logits = decode_loop(
                    self.model,
                    batch.tokens.to(self.model.cfg.device),
                    batch.attention_mask.to(self.model.cfg.device),
                    max_new_tokens,
                    sampling,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    before_chunk=before_chunk,
                    keep_logits=return_logits,
                    progress=progress,
                )
        new_mask = torch.ones_like(new)
        if eos is not None:
            # keep the EOS token itself, mask what follows it
            after = (new == eos).long().cumsum(1) - (new == eos).long()
            new_mask = (after == 0).long()
        tokens = torch.cat([batch.tokens, new.cpu()], 1)
        mask = torch.cat([batch.attention_mask, new_mask.cpu()], 1)
        completions, prompts_text = [], []
        for b in range(tokens.shape[0]):
            ids = new[b][new_mask[b].bool()].tolist()
            if eos is not None and ids and ids[-1] == eos:
                ids = ids[:-1]
            completions.append(tok.decode(ids) if tok is not None else "")
            p = batch.tokens[b][batch.attention_mask[b].bool()].tolist()
            prompts_text.append(tok.decode(p) if tok is not None else "")
        return Generation(tokens, mask, prompt_len, new.cpu(), completions, prompts_text, logits)
