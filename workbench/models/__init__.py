"""Loading models: the embedded SmolLM2-135M-Instruct, local checkpoints (Hugging Face directories
and GGUF files, converted by TransformerLens) and TransformerLens' own catalogue.

* ``load_model(name_or_path)`` is the one entry point (``workbench.models.loader``);
* ``workbench.models.checkpoints``: local checkpoints (``load_checkpoint``), the GGUF conversion cache;
* ``workbench.models.architectures``: which Hugging Face architectures convert, and how;
* ``workbench.models.embedded``: the embedded model (``gguf_path``, ``load_hf_embedded``, the
  hand-built reference config ``smollm2_config``);
* ``workbench.models.tiny``: ``tiny_model`` for unit tests; ``workbench.models.chat``: ``chat_prompt``.
"""

from ..paths import cache_dir
from .architectures import ARCHITECTURES, supported
from .base import ModelLoadError
from .chat import ChatMessage, chat_prompt
from .checkpoints import load_checkpoint
from .embedded import EMBEDDED_ALIASES, EMBEDDED_MODEL, gguf_path, load_hf_embedded, smollm2_config
from .loader import load_model
from .tiny import tiny_model

supported_architectures = supported

__all__ = [
    "ARCHITECTURES",
    "EMBEDDED_ALIASES",
    "EMBEDDED_MODEL",
    "ChatMessage",
    "ModelLoadError",
    "cache_dir",
    "chat_prompt",
    "gguf_path",
    "load_checkpoint",
    "load_hf_embedded",
    "load_model",
    "smollm2_config",
    "supported_architectures",
    "tiny_model",
]
