"""Chat prompts in the tokenizer's own chat template."""

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str  # the message text

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"chat role must be 'system', 'user' or 'assistant', got {self.role!r}")


def chat_prompt(
    model_or_tokenizer, user: Union[str, list], *, system: Optional[str] = None, add_generation_prompt: bool = True
) -> str:
    """Format a chat prompt with the tokenizer's own chat template (SmolLM2: ChatML,
    ``<|im_start|>role\\n...<|im_end|>``). ``user`` is a string, or a list of ``{"role", "content"}``
    dicts / ``ChatMessage``; the result ends with the assistant header, ready for generation."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat_prompt needs a tokenizer with a chat template (the embedded model has one)")
    if isinstance(user, str):
        messages = [{"role": "user", "content": user}]
    else:
        messages = [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in user]
        for m in messages:
            ChatMessage(m["role"], m["content"])
    if system is not None:
        messages = [{"role": "system", "content": system}, *messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
