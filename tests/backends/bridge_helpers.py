"""A tiny random Llama checkpoint seen two ways: as a TransformerBridge (in compatibility mode) around
the Hugging Face model, and as the HookedTransformer that ``workbench.models.load_model(path)``
converts from the same saved weights (TransformerLens' own conversion)."""

import warnings
from pathlib import Path

import torch

WORDS = "the a cat dog sat on mat and ran far away big small red blue green house tree sky sun".split()


def tiny_tokenizer():
    """A word-level tokenizer over ``WORDS`` (ids 0-3 special), built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def tiny_llama(seed: int = 0):
    """A random 2-layer LlamaForCausalLM (GQA, RMSNorm weights off 1) and its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(WORDS) + 4,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=5000.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return hf, tiny_tokenizer()


def boot_bridge(hf, tokenizer, name: str = "tiny-llama", **compat):
    """``TransformerBridge.boot_transformers`` around ``hf`` (no hub), in compatibility mode."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(name, hf_model=hf, tokenizer=tokenizer)
        bridge.enable_compatibility_mode(disable_warnings=True, **compat)
    bridge.cfg.default_prepend_bos = False  # as the HookedTransformer below: no BOS unless asked
    bridge.requires_grad_(False)
    with torch.no_grad():  # the bridge wires its own permanent capture hooks on its first forward pass
        bridge(torch.tensor([[bridge.cfg.d_vocab - 1]]))
    return bridge


def tiny_pair(directory: Path, seed: int = 0):
    """(HookedTransformer, TransformerBridge) of one random tiny Llama checkpoint."""
    from workbench.models import load_model

    hf, tok = tiny_llama(seed)
    hf.save_pretrained(directory)
    tok.save_pretrained(directory)
    model = load_model(directory, default_prepend_bos=False)
    from transformers import AutoTokenizer

    # reloaded from the directory: TransformerLens re-opens a tokenizer by its name_or_path
    return model, boot_bridge(hf, AutoTokenizer.from_pretrained(directory, local_files_only=True))
