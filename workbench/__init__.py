"""workbench: a mechanistic-interpretability workbench on TransformerLens.

One hook registry (``HookRegistry``) reads and edits activations at ``Site``s; concept vectors,
SAE features, lenses and patching are built on it.
"""

from .edits import AddVector, Clamp, EditContext, ProjectOut, Replace
from .models import EMBEDDED_MODEL, chat_prompt, load_model, tiny_model
from .positions import Positions
from .registry import Generation, HookRegistry
from .sites import Site, resid
from .tokens import Batch, tokenize

__all__ = [
    "EMBEDDED_MODEL",
    "AddVector",
    "Batch",
    "Clamp",
    "EditContext",
    "Generation",
    "HookRegistry",
    "Positions",
    "ProjectOut",
    "Replace",
    "Site",
    "chat_prompt",
    "load_model",
    "resid",
    "tiny_model",
    "tokenize",
]
__version__ = "0.1.0"
