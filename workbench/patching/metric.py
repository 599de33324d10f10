"""The patching metric: the normalised logit difference at the last position, and how a model does
on a task.

``LD = logit(correct) − logit(wrong)`` at the last position, averaged over prompts and normalised so
that the clean run scores 1 and the corrupted run 0 (Wang et al. 2022, IOI; the normalisation
follows Nanda's attribution-patching write-up):

    M = (mean LD − LD_corrupted) / (LD_clean − LD_corrupted)

Logits are the model's real output: ``workbench.readout.resid_to_logits`` of the last residual
(final norm, unembedding and, where the config has one, the output soft-cap), the same numbers
``model(tokens)`` returns, so clean and corrupted references agree with TransformerLens' patching.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..backends import as_backend
from ..readout import resid_to_logits, token_logits
from ..validation import check_int

if TYPE_CHECKING:
    from .tasks import Task


def logit_diff(
    last_logits: Float[Tensor, "rows d_vocab"], correct: Int[Tensor, " rows"], wrong: Int[Tensor, " rows"]
) -> Float[Tensor, " rows"]:
    """``logit(correct) − logit(wrong)`` per row (logits of the last position)."""
    r = torch.arange(last_logits.shape[0], device=last_logits.device)
    return last_logits[r, correct.to(last_logits.device)] - last_logits[r, wrong.to(last_logits.device)]


@dataclass(frozen=True)
class LogitDiffMetric:
    """Normalised logit difference: ``(mean_i LD_i − ld_corrupted) / (ld_clean − ld_corrupted)``.

    Called on full logits ``[n, pos, d_vocab]`` of the task's n prompts it returns a scalar (this is
    the form TransformerLens' patching functions and autograd use); ``per_row`` gives unnormalised
    LDs of rows that each belong to prompt ``prompt_idx[r]`` (for batched patching)."""

    correct: Int[Tensor, " n"]  # answer token of each clean prompt
    wrong: Int[Tensor, " n"]  # answer token of each corrupted prompt
    ld_clean: float  # mean LD of the clean run (metric 1)
    ld_corrupted: float  # mean LD of the corrupted run (metric 0)

    def __post_init__(self) -> None:
        for what in ("correct", "wrong"):
            t = getattr(self, what)
            if not isinstance(t, Tensor) or t.ndim != 1 or t.is_floating_point():
                raise TypeError(f"LogitDiffMetric.{what} must be a 1-d integer tensor, got {t!r:.60}")
        if self.correct.shape != self.wrong.shape:
            raise ValueError(f"correct {tuple(self.correct.shape)} and wrong {tuple(self.wrong.shape)} differ in shape")
        for what in ("ld_clean", "ld_corrupted"):
            if not math.isfinite(getattr(self, what)):
                raise ValueError(f"LogitDiffMetric.{what} must be finite, got {getattr(self, what)}")
        if abs(self.ld_clean - self.ld_corrupted) < 1e-6:
            raise ValueError(
                f"clean and corrupted runs have the same mean logit difference ({self.ld_clean:.4g}); the normalised "
                "metric would divide by zero — the corruption does not change the answer"
            )

    def per_row(
        self, last_logits: Float[Tensor, "rows d_vocab"], prompt_idx: Int[Tensor, " rows"]
    ) -> Float[Tensor, " rows"]:
        return logit_diff(last_logits, self.correct[prompt_idx], self.wrong[prompt_idx])

    def per_row_resid(
        self, model, last_resid: Float[Tensor, "rows d_model"], prompt_idx: Int[Tensor, " rows"]
    ) -> Float[Tensor, " rows"]:
        """``per_row`` from the last position's residual after the last block: only the two logits
        the difference needs are read out (``workbench.readout.token_logits``), not the vocabulary."""
        idx = prompt_idx.cpu()
        pair = torch.stack([self.correct[idx], self.wrong[idx]], 1)
        lg = token_logits(model, last_resid, pair)
        return lg[:, 0] - lg[:, 1]

    def normalise(self, mean_ld):
        return (mean_ld - self.ld_corrupted) / (self.ld_clean - self.ld_corrupted)

    def __call__(self, logits: Float[Tensor, "n pos d_vocab"]) -> Float[Tensor, ""]:
        last = logits[:, -1] if logits.ndim == 3 else logits
        if last.shape[0] != self.correct.shape[0]:
            raise ValueError(f"the metric is for {self.correct.shape[0]} prompts, got logits for {last.shape[0]}")
        return self.normalise(logit_diff(last, self.correct, self.wrong).mean())


def last_logits(model, tokens: Int[Tensor, "n pos"], batch_size: int = 32) -> Float[Tensor, "n d_vocab"]:
    """The model's output logits at the last position (only that position is read out)."""
    check_int("batch_size", batch_size, min=1)
    outs = []
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch_size):
            resid = as_backend(model).forward(
                tokens[i : i + batch_size].to(model.cfg.device), stop_at_layer=model.cfg.n_layers
            )
            outs.append(resid_to_logits(model, resid[:, -1]))
    return torch.cat(outs, 0)


def make_metric(model, task: "Task") -> LogitDiffMetric:
    """Measure the clean and corrupted mean logit differences and build the normalised metric."""
    lc = logit_diff(last_logits(model, task.clean), task.correct, task.wrong).mean().item()
    lx = logit_diff(last_logits(model, task.corrupted), task.correct, task.wrong).mean().item()
    return LogitDiffMetric(task.correct, task.wrong, lc, lx)


@dataclass(frozen=True)
class TaskCheck:
    """How the model does on a task: top-1 accuracy on clean and corrupted prompts, which prompts
    it fails (clean top-1 ≠ correct or corrupted top-1 ≠ wrong), and the kept task."""

    task: "Task"
    clean_accuracy: float
    corrupted_accuracy: float
    n_total: int
    dropped: tuple[str, ...]
    kept: "Task"

    def summary(self) -> str:
        return (
            f"{self.task.name}: clean top-1 accuracy {self.clean_accuracy:.2f}, "
            f"corrupted {self.corrupted_accuracy:.2f} over {self.n_total} prompts; "
            f"dropped {len(self.dropped)}; kept {self.kept.n}"
        )


def check_task(model, task: "Task") -> TaskCheck:
    """Run clean and corrupted prompts; keep the prompts whose clean top-1 token is the correct
    answer and whose corrupted top-1 token is the corrupted answer."""
    clean = last_logits(model, task.clean).argmax(-1).cpu()
    corr = last_logits(model, task.corrupted).argmax(-1).cpu()
    ok_clean = clean == task.correct
    ok_corr = corr == task.wrong
    keep = torch.nonzero(ok_clean & ok_corr).flatten().tolist()
    texts = task.clean_prompts or tuple(str(r.tolist()) for r in task.clean)
    dropped = tuple(texts[i] for i in range(task.n) if i not in keep)
    if not keep:
        raise ValueError(
            f"the model fails every prompt of task '{task.name}' (clean accuracy {ok_clean.float().mean():.2f}); "
            "nothing to patch"
        )
    kept = task.subset(keep, note=f"dropped {len(dropped)} of {task.n} prompts the model fails") if dropped else task
    return TaskCheck(task, ok_clean.float().mean().item(), ok_corr.float().mean().item(), task.n, dropped, kept)


__all__ = ["LogitDiffMetric", "TaskCheck", "check_task", "last_logits", "logit_diff", "make_metric"]
