"""Which Hugging Face architectures load as a ``HookedTransformer``, and how TransformerLens gets
their config.

TransformerLens converts a checkpoint in two steps, both its own code:

* ``transformer_lens.loading.convert_hf_model_config`` maps the Hugging Face config to a
  ``HookedTransformerConfig`` dict. For most architectures it reads ``config.json`` from a local
  directory (``Architecture.template is None``). For the Gemma family it has no config-driven
  branch: the configs are hard-coded per official model name. There workbench takes the hard-coded
  config of one official model as the ``template`` (norm placement, soft-cap switches, gated MLP,
  ...) and replaces its sizes and scalars with the checkpoint's (``Architecture.geometry``).
* ``transformer_lens.loading.get_pretrained_state_dict`` dispatches on the architecture to the
  weight converter (``convert_llama_weights``, ``convert_gemma_weights``, ...).

``Architecture.refuse`` lists config settings that TransformerLens' conversion of that
architecture does not implement; a checkpoint that sets one is refused with the field's name
rather than converted into a model that computes something else.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from transformer_lens.loading_from_pretrained import _get_rope_theta

from .base import ModelLoadError


@dataclass(frozen=True)
class Refusal:
    """A Hugging Face config field whose value must be one of ``allowed`` (``default`` when absent)."""

    field: str  # the Hugging Face config attribute
    allowed: tuple  # values TransformerLens' conversion implements
    reason: str  # what TransformerLens would do instead (shown to the user)
    default: Any = None  # the value of an absent field


@dataclass(frozen=True)
class Architecture:
    """One Hugging Face causal-LM class that TransformerLens converts to a ``HookedTransformer``."""

    name: str  # the class name in config.json "architectures" (e.g. "LlamaForCausalLM")
    family: str  # a short family name for messages
    # Official TransformerLens model whose hard-coded config is the base, for architectures without
    # a config-driven branch in convert_hf_model_config; None: TransformerLens reads config.json.
    template: Optional[str] = None
    # For a template: the HookedTransformerConfig fields read from the checkpoint's HF config.
    geometry: Optional[Callable[[Any], dict]] = None
    # rope_parameters["rope_type"] values TransformerLens implements for this architecture.
    rope_types: tuple = ("default",)
    refuse: tuple = ()  # Refusal rules
    # Fields convert_hf_model_config reads under a name that transformers 5 no longer writes to
    # config.json: (name TransformerLens reads, name transformers writes), copied when absent.
    config_aliases: tuple = ()


ARCHITECTURES: dict = {}


def register(arch: Architecture) -> Architecture:
    if arch.name in ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is registered twice")
    if (arch.template is None) != (arch.geometry is None):
        raise ValueError(f"architecture {arch.name!r}: a template needs a geometry and vice versa")
    ARCHITECTURES[arch.name] = arch
    return arch


def supported() -> list:
    """The Hugging Face architecture names that load, sorted."""
    return sorted(ARCHITECTURES)


def _optional_cap(value: Any) -> float:
    # TransformerLens: a soft-cap is on for a positive value, off for -1.0 (its default).
    return float(value) if value else -1.0


def _layer_attn_types(c: Any) -> list:
    return ["local" if t == "sliding_attention" else "global" for t in c.layer_types]


def _gemma_common(c: Any) -> dict:
    return {
        "d_model": c.hidden_size,
        "d_head": c.head_dim,
        "n_heads": c.num_attention_heads,
        "n_key_value_heads": c.num_key_value_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": c.max_position_embeddings,
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": getattr(c, "hidden_activation", None) or c.hidden_act,
        "initializer_range": c.initializer_range,
    }


def _gemma1_geometry(c: Any) -> dict:
    return {**_gemma_common(c), "rotary_base": _get_rope_theta(c), "rotary_dim": c.head_dim}


def _gemma2_layout(c: Any) -> dict:
    """Gemma-2 and -3: scores scaled by ``query_pre_attn_scalar ** -0.5`` (TransformerLens divides by
    ``attn_scale``), soft-capped attention scores and output logits, sliding-window layers as
    ``layer_types`` says (Gemma Team 2024, "Gemma 2", arXiv:2408.00118)."""
    return {
        "attn_scale": float(c.query_pre_attn_scalar) ** 0.5,
        "attn_scores_soft_cap": _optional_cap(c.attn_logit_softcapping),
        "output_logits_soft_cap": _optional_cap(c.final_logit_softcapping),
        "window_size": c.sliding_window,
        "use_local_attn": bool(c.sliding_window) and "sliding_attention" in c.layer_types,
        "attn_types": _layer_attn_types(c),
    }


def _gemma2_geometry(c: Any) -> dict:
    """Gemma-2: the Gemma layout with one rotary base."""
    return {**_gemma_common(c), "rotary_base": _get_rope_theta(c), **_gemma2_layout(c)}


def _gemma3_geometry(c: Any) -> dict:
    """Gemma-3 text: Gemma-2's layout plus q/k RMSNorm and a separate rotary base for the local
    layers (Gemma Team 2025, "Gemma 3", arXiv:2503.19786)."""
    rope = c.rope_parameters
    return {
        **_gemma_common(c),
        "rotary_base": rope["full_attention"]["rope_theta"],
        "rotary_base_local": rope["sliding_attention"]["rope_theta"],
        **_gemma2_layout(c),
    }


_NO_ATTN_BIAS = Refusal("attention_bias", (False,), "its converter writes zero attention biases", default=False)
_NO_MLP_BIAS = Refusal("mlp_bias", (False,), "its converter writes zero MLP biases", default=False)
_NO_BIDIRECTIONAL = Refusal(
    "use_bidirectional_attention", (None, False), "HookedTransformer attends causally", default=None
)

for _arch in (
    Architecture("GPT2LMHeadModel", "GPT-2", config_aliases=(("n_ctx", "n_positions"),)),
    Architecture("GPTNeoForCausalLM", "GPT-Neo"),
    Architecture("GPTJForCausalLM", "GPT-J"),
    Architecture("GPTNeoXForCausalLM", "Pythia/GPT-NeoX"),
    Architecture("OPTForCausalLM", "OPT"),
    Architecture("BloomForCausalLM", "BLOOM"),
    Architecture("LlamaForCausalLM", "Llama", rope_types=("default", "llama3"), refuse=(_NO_ATTN_BIAS, _NO_MLP_BIAS)),
    Architecture("MistralForCausalLM", "Mistral"),
    Architecture("MixtralForCausalLM", "Mixtral"),
    Architecture(
        "Qwen2ForCausalLM",
        "Qwen2",
        refuse=(
            Refusal(
                "use_sliding_window", (False,), "its config conversion ignores Qwen2's sliding window", default=False
            ),
        ),
    ),
    Architecture("Qwen3ForCausalLM", "Qwen3"),
    Architecture("Phi3ForCausalLM", "Phi-3"),
    Architecture("OlmoeForCausalLM", "OLMoE"),
    Architecture("Olmo3ForCausalLM", "OLMo-3", rope_types=("default", "yarn")),
    Architecture("GemmaForCausalLM", "Gemma", "google/gemma-2b", _gemma1_geometry, refuse=(_NO_ATTN_BIAS,)),
    Architecture(
        "Gemma2ForCausalLM",
        "Gemma-2",
        "google/gemma-2-2b",
        _gemma2_geometry,
        refuse=(_NO_ATTN_BIAS, _NO_BIDIRECTIONAL),
    ),
    Architecture(
        "Gemma3ForCausalLM",
        "Gemma-3",
        "google/gemma-3-1b-it",
        _gemma3_geometry,
        refuse=(_NO_ATTN_BIAS, _NO_BIDIRECTIONAL),
    ),
):
    register(_arch)


def _rope_types(c: Any) -> set:
    """The rope types a config asks for (``rope_parameters``, per layer type when nested)."""
    params = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None)
    if not params:
        return {"default"}
    if isinstance(params, Mapping) and params and all(isinstance(v, Mapping) for v in params.values()):
        groups = list(params.values())
    else:
        groups = [params]
    return {(g.get("rope_type") or g.get("type") or "default") for g in groups}


def architecture_of(hf_config: Any, where: str) -> Architecture:
    """The registered architecture of a Hugging Face config (its ``architectures[0]``, else the causal-LM
    class of its ``model_type``), after checking the settings TransformerLens does not implement."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names = list(getattr(hf_config, "architectures", None) or [])
    model_type = getattr(hf_config, "model_type", None)
    if not names and model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        names = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]]
    name = names[0] if names else None
    if name not in ARCHITECTURES:
        found = f"architecture {name!r}" if name else "no architecture"
        raise ModelLoadError(
            f"{where}: {found} (model_type {model_type!r}) is not one that TransformerLens converts to a "
            f"HookedTransformer. Supported: {', '.join(f'{a} ({ARCHITECTURES[a].family})' for a in supported())}."
        )
    arch = ARCHITECTURES[name]
    for rule in arch.refuse:
        value = getattr(hf_config, rule.field, rule.default)
        if value not in rule.allowed:
            raise ModelLoadError(
                f"{where}: {name} with {rule.field}={value!r} is not converted faithfully by TransformerLens "
                f"({rule.reason}); supported: {rule.field} in {list(rule.allowed)}."
            )
    rope = _rope_types(hf_config) - set(arch.rope_types)
    if rope:
        raise ModelLoadError(
            f"{where}: {name} with rope_parameters rope_type {sorted(rope)} is not implemented by TransformerLens' "
            f"conversion; supported rope types here: {list(arch.rope_types)}."
        )
    return arch
