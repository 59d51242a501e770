"""The one OLMo-2 config factory: the organism, the tiny test models and the stability sweeps build
their ``Olmo2Config`` here, so the architecture's defaults are written once."""

from __future__ import annotations

from typing import Any


def olmo2_config(
    *,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_positions: int = 512,
    rope_theta: float = 10000.0,
    tokenizer: Any = None,
    **extra: Any,
):
    """An ``Olmo2Config`` (full multi-head attention, untied embeddings, HF's OLMo-2 norms).

    ``tokenizer`` supplies the bos / eos / pad ids when given; ``extra`` goes to the config as is.
    """
    from transformers import Olmo2Config

    ids = {}
    if tokenizer is not None:
        ids = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    return Olmo2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=False,
        **ids,
        **extra,
    )
