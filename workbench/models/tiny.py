"""Tiny random models of every supported family, built from a config in milliseconds (no download).

Used by the unit tests and handy in notebooks for trying an API before loading a real checkpoint.
"""

from __future__ import annotations

import functools

import torch

from .load import LoadedModel, wrap

_TEXT = (
    "The quick brown fox jumps over the lazy dog. Mira Okafor was born in the city of Halden. "
    "Question: What is the capital of Norland?\nAnswer: Vell. 0123456789 Paris London Berlin Rome "
    "The Eiffel Tower is located in the city of Paris. Alan Turing worked in the field of computing."
)


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab 256+merges, padded to 320) trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TEXT] * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A",
        pair="<|bos|> $A <|bos|> $B",
        special_tokens=[("<|bos|>", tok.token_to_id("<|bos|>"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    )


def _config(family: str, vocab: int, d: int, layers: int, heads: int):
    import transformers as tf

    common = dict(
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    if family == "olmo2":
        from ..training.olmo2 import olmo2_config

        return olmo2_config(
            vocab_size=vocab, hidden=d, layers=layers, heads=heads, intermediate=2 * d, max_positions=128,
            bos_token_id=0, eos_token_id=1, pad_token_id=2,
        )  # fmt: skip
    if family == "olmo3":
        return tf.Olmo3Config(**common, sliding_window=16)
    if family == "olmo":
        return tf.OlmoConfig(**common)
    if family == "olmoe":
        return tf.OlmoeConfig(**dict(common, intermediate_size=d), num_experts=4, num_experts_per_tok=2)
    if family == "llama-like":
        return tf.LlamaConfig(**common)
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab,
            n_embd=d,
            n_layer=layers,
            n_head=heads,
            n_positions=128,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        )
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(**common)
    raise ValueError(f"no tiny config for family {family!r}")


TINY_FAMILIES = ("olmo", "olmo2", "olmo3", "olmoe", "llama-like", "gpt2", "gpt_neox")


def tiny_model(
    family: str = "olmo2",
    *,
    layers: int = 2,
    d_model: int = 64,
    heads: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """A randomly initialised model of ``family`` with the tiny tokenizer, in eval mode."""
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    vocab = (len(tok) + 63) // 64 * 64
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(family, vocab, d_model, layers, heads), dtype=dtype)
    model.eval()
    return wrap(model, tok, spec=f"<tiny {family}>")
