"""data.forget_positions: entity detection, exact gradient masking by position, and the trainer wiring."""

from __future__ import annotations

import pytest
import torch

from workbench.config import from_dict
from workbench.data import SemEvalRecord
from workbench.errors import WorkbenchError
from workbench.unlearning import UnlearnConfig, unlearn
from workbench.unlearning.data import collate, tokenize_record
from workbench.unlearning.positions import entity_spans, forget_position_mask, gradient_position_mask


def _words(text: str) -> list[str]:
    return [text[a:b] for a, b in entity_spans(text)]


def test_entity_spans_name_the_subject_and_skip_template_words():
    assert _words("Question: What is Kena Giholm's date of birth?\nAnswer:") == ["Kena", "Giholm"]
    story = "In the village of Grotavale lived Soel. Late one evening, Zoin, an old friend, came."
    assert _words(story) == ["Grotavale", "Soel", "Zoin"]
    assert _words("Who founded the Veburg Academy in 1310?") == ["Veburg", "Academy"]
    assert _words("what is the capital of the country?") == []
    assert _words("Émile met O'Neil in São Paulo.") == ["Émile", "O'Neil", "São", "Paulo"]


def test_entities_are_found_in_the_public_lume_prompts(lume_dir):
    from workbench.data import read_semeval

    forget = [r for r in read_semeval(lume_dir) if r.split == "forget"]
    found = sum(bool(entity_spans(r.input)) for r in forget)
    assert found >= 0.95 * len(forget), f"only {found} of {len(forget)} LUME forget prompts name an entity"


def test_entity_positions_survive_left_truncation():
    from workbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    rec = SemEvalRecord(
        "x1qa0", "Question: Where was Mira born, said Alan?\nAnswer:", " Halden", "Task2", "forget"
    )
    ex = tokenize_record(tok, rec, max_length=64, entities=True)
    names = tok.decode([ex.input_ids[i] for i in ex.entities]).replace(" ", "")
    assert names == "MiraAlan"
    assert all(i < ex.n_prompt for i in ex.entities)
    out_len = len(tok(" Halden", add_special_tokens=False)["input_ids"])
    keep = len(ex.input_ids) - 3  # cut three prompt tokens from the left
    short = tokenize_record(tok, rec, max_length=keep, entities=True)
    assert short.n_prompt == keep - out_len
    assert [short.input_ids[i] for i in short.entities] == [ex.input_ids[i] for i in ex.entities]
    assert tokenize_record(tok, rec, max_length=64).entities == ()  # only on request


def test_forget_rows_teach_through_their_own_positions_retain_rows_through_all():
    from workbench.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    f = tokenize_record(
        tok, SemEvalRecord("f", "Mira was born in", " Rome", "Task2", "forget"), max_length=32, entities=True
    )
    r = tokenize_record(
        tok, SemEvalRecord("r", "Alan lived in the city of", " Paris", "Task2", "retain"), max_length=32
    )
    batch = collate([f, r], pad_id=1)
    assert forget_position_mask(batch, "all") is None
    prompt = forget_position_mask(batch, "prompt")
    assert prompt[0].sum() == f.n_prompt and bool(prompt[0, f.n_prompt :].any()) is False
    assert torch.equal(prompt[1], batch.attention_mask[1].bool())
    ent = forget_position_mask(batch, "entities")
    assert ent[0].nonzero().flatten().tolist() == list(f.entities) and torch.equal(ent[1], prompt[1])
    with pytest.raises(WorkbenchError, match="unknown data.forget_positions"):
        forget_position_mask(batch, "subject")


def test_gradient_mask_is_exact_and_leaves_the_forward_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    model[0].requires_grad_(False)  # frozen: not hooked, and its output keeps no grad anyway
    x = torch.randn(2, 4, 5)
    mask = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)

    h = torch.tanh(model[0](x))
    y = model[2](h)
    y.retain_grad()
    (y**2).sum().backward()
    m = mask.unsqueeze(-1).float()
    # dL/dW = sum over the masked positions of g_t h_t^T, written out directly
    want_w = torch.einsum("bto,bti->oi", y.grad * m, h)
    want_b = (y.grad * m).sum((0, 1))
    model.zero_grad()

    with gradient_position_mask(model, mask):
        y2 = model(x)
    assert torch.equal(y2, y)  # the value is unchanged
    (y2**2).sum().backward()
    torch.testing.assert_close(model[2].weight.grad, want_w)
    torch.testing.assert_close(model[2].bias.grad, want_b)
    assert not model[2]._forward_hooks  # hooks removed on exit


def _cfg(model_dir, data_dir, out, positions, **train):
    return from_dict(
        UnlearnConfig,
        {
            "model": str(model_dir),
            "out": str(out),
            "method": "grad_ascent",
            "data": {"path": str(data_dir), "forget_positions": positions},
            "select": {"layers": [0, 1], "kind": "mlp"},
            "train": {
                "max_steps": 1,
                "batch_size": 4,
                "progress": False,
                "keep_best": False,
                "lr": 1e-2,
                **train,
            },
        },
    )


def test_positions_change_the_update_and_entities_need_names(tiny_model_dir, semeval_dir, tmp_path):
    from safetensors.torch import load_file

    weights = {}
    for where, ckpt in (("all", False), ("entities", False), ("entities", True)):
        res = unlearn(
            _cfg(tiny_model_dir, semeval_dir, tmp_path / f"{where}{ckpt}", where, gradient_checkpointing=ckpt)
        )
        weights[where, ckpt] = load_file(str(next(res.model_dir.glob("*.safetensors"))))
    name = next(k for k in weights["all", False] if "layers.0.mlp.down_proj" in k)
    assert not torch.equal(weights["all", False][name], weights["entities", False][name])
    for k, v in weights["entities", False].items():  # the mask holds through the checkpointed re-forward
        torch.testing.assert_close(weights["entities", True][k], v, atol=1e-6, rtol=0)

    nameless = tmp_path / "nameless"
    nameless.mkdir()
    for split in ("forget", "retain"):
        rows = [f'{{"id": "{split}{i}qa0", "input": "what is {i} plus one?", "output": " {i + 1}", '
                f'"task": "Task3", "split": "{split}"}}' for i in range(8)]  # fmt: skip
        (nameless / f"{split}_train.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(WorkbenchError, match="found no capitalized name"):
        unlearn(_cfg(tiny_model_dir, nameless, tmp_path / "nameless_run", "entities"))
