"""The organism's tokenizer: a ByteLevel BPE (``tokenizers``) with digits split one per token.

Special tokens: ``<|endoftext|>`` (eos, also bos, as in GPT-2 / OLMo) and ``<|pad|>``. Nothing is added
when encoding (no bos), as with OLMo-2's tokenizer, so ``tokenizer(prompt)`` gives exactly the tokens the
model was trained on. The vocabulary is padded with unused ``<|extra_i|>`` tokens to exactly the model's
vocabulary size, a multiple of 64.
"""

from __future__ import annotations

from collections.abc import Sequence

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Train the BPE on ``texts`` and return a ``PreTrainedTokenizerFast`` of exactly ``vocab_size`` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    extra = vocab_size - bpe.get_vocab_size()
    if extra < 0:
        raise RuntimeError(f"BPE produced {bpe.get_vocab_size()} tokens for a target of {vocab_size}")
    bpe.add_special_tokens([f"<|extra_{i}|>" for i in range(extra)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, pad_token=PAD, clean_up_tokenization_spaces=False
    )
    tok.model_max_length = 1 << 30
    if len(tok) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(tok)} tokens, expected {vocab_size}")
    return tok
