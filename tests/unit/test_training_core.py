"""The training core: one schedule, one checkpoint format, and resuming the organism's trainer exactly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from workbench.organism.config import ModelConfig, OrganismConfig, TrainConfig, WorldConfig
from workbench.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from workbench.training.schedule import lr_multiplier


def test_schedule_shapes():
    assert lr_multiplier(0, 10, warmup=4) == 0.25 and lr_multiplier(3, 10, warmup=4) == 1.0
    assert lr_multiplier(9, 10, kind="cosine", min_ratio=0.05, end_at_last_step=True) == pytest.approx(0.05)
    assert lr_multiplier(5, 10, kind="linear") == pytest.approx(0.5)
    assert lr_multiplier(7, 10, kind="constant", warmup=2) == 1.0
    # SAELens / sparsify style: constant, then linear to 0 over the last 20%
    assert lr_multiplier(79, 100, kind="linear", decay_start=80) == 1.0
    assert lr_multiplier(90, 100, kind="linear", decay_start=80) == pytest.approx(0.5)
    assert lr_multiplier(5, 10, kind="cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier(0, 10, kind="step")


def test_checkpoint_round_trip_restores_adam_and_rng(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
        opt.zero_grad()
    save_checkpoint(tmp_path, 3, model.state_dict(), opt, model.named_parameters(), {"note": "x"}, keep=1)
    save_checkpoint(tmp_path, 4, model.state_dict(), opt, model.named_parameters(), {"note": "y"}, keep=1)
    assert latest_checkpoint(tmp_path).name == "step_0000004"
    assert len(list(tmp_path.glob("step_*"))) == 1  # keep=1
    expected_next = torch.rand(3)
    fresh = torch.nn.Linear(4, 3)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    tensors, state = load_checkpoint(latest_checkpoint(tmp_path), opt2, fresh.named_parameters())
    fresh.load_state_dict(tensors)
    assert state == {"note": "y"} and torch.equal(torch.rand(3), expected_next)  # RNG restored
    for p, q in zip(model.parameters(), fresh.parameters()):
        a, b = opt.state[p], opt2.state[q]
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
        assert float(a["step"]) == float(b["step"]) and b["step"].dim() == 0


def test_organism_training_resumes_to_the_same_weights(tmp_path):
    from workbench.organism.corpus import build_corpus
    from workbench.organism.tokenizer import train_tokenizer
    from workbench.organism.train import train_model
    from workbench.organism.world import generate_world

    world_cfg = WorldConfig(people=2, people_validation=1, stories=1, stories_validation=1, entities=1,
                            entities_validation=1)  # fmt: skip
    cfg = OrganismConfig(
        world=world_cfg,
        model=ModelConfig(layers=1, hidden=64, heads=1, intermediate=128, vocab_size=512, max_positions=256),
        train=TrainConfig(steps=6, batch_rows=2, seq_len=256, warmup_steps=2, bf16=False, threads=1),
    )
    corpus = build_corpus(generate_world(cfg.world, 0), cfg.world, 0)
    tok = train_tokenizer(corpus.tokenizer_texts(), 512, held_out=corpus.invented)
    whole, stats = train_model(cfg, tok, corpus.documents, seed=0, progress=False)
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):  # a build killed after step 4 (checkpoints every 2 steps)
        train_model(
            cfg, tok, corpus.documents, seed=0, progress=False, checkpoints=ck, save_every=2, _stop_at=5
        )
    assert latest_checkpoint(ck).name == "step_0000004"
    resumed, stats2 = train_model(
        cfg, tok, corpus.documents, seed=0, progress=False, checkpoints=ck, save_every=2
    )
    for (n, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), n
    assert stats2.tokens == stats.tokens and dataclasses.asdict(stats2)["steps"] == 6
