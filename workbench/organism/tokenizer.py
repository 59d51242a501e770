"""The organism's tokenizer: a ByteLevel BPE (``tokenizers``) with digits split one per token.

Like a real pretrained tokenizer, it has never seen the world's made-up names: its merges are learned on
text where every name is replaced by a stand-in word (:meth:`.corpus.Corpus.tokenizer_texts`), and any
merge that would still make one of the held-out words a single token is removed. So ``" Theibaridge"``
is split into subword pieces, as GPT-2's or OLMo's tokenizer splits a rare name, and the model has to
assemble a person from pieces (the step that causal tracing finds in early MLPs at the last subject token).

Special tokens: ``<|endoftext|>`` (eos, also bos, as in GPT-2 / OLMo) and ``<|pad|>``. Nothing is added
when encoding (no bos), as with OLMo-2's tokenizer, so ``tokenizer(prompt)`` gives exactly the tokens the
model was trained on. The vocabulary is padded with unused ``<|extra_i|>`` tokens to exactly the model's
vocabulary size, a multiple of 64.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def _without_merges(bpe, words: Collection[str]):
    """``bpe`` with every merge removed whose result is one of ``words`` as a whole word.

    Each form a word takes in text counts: capitalized or lower case, at the start of a text or after a
    space. A token of the vocabulary is made by exactly one merge, so once that merge is gone the token
    can no longer form, and the word is encoded as two or more pieces. The token stays in the
    vocabulary, unused, so ids and sizes do not change.
    """
    from tokenizers import Tokenizer, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    forms = set()
    for word in words:
        for w in {word, word.lower(), word.capitalize()}:
            for text in (w, " " + w):
                forms.add("".join(piece for piece, _ in byte_level.pre_tokenize_str(text)))
    data = json.loads(bpe.to_str())
    merges = data["model"]["merges"]
    pairs = [m if isinstance(m, list) else m.split(" ") for m in merges]
    data["model"]["merges"] = [m for m, (a, b) in zip(merges, pairs) if a + b not in forms]
    data["model"]["ignore_merges"] = False  # a whole word in the vocabulary must not bypass the merges
    return Tokenizer.from_str(json.dumps(data))


def train_tokenizer(texts: Sequence[str], vocab_size: int, *, held_out: Collection[str] = ()):
    """Train the BPE on ``texts``; return a ``PreTrainedTokenizerFast`` of exactly ``vocab_size`` tokens.

    No word of ``held_out`` (the world's made-up names) becomes a single token, in any of its forms.
    """
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
    if held_out:
        bpe = _without_merges(bpe, held_out)
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
