"""Trainer: a tiny real run lowers the loss, a killed run resumes exactly, runs are never clobbered."""
from __future__ import annotations

import pytest
import torch

from deblurkit.engine import RunExistsError, Trainer, validate_config
from deblurkit.engine.checkpoint import load_training_checkpoint


def tiny_config(out_dir, data_dir, **train):
    photos = str(data_dir / "photos" / "classic")
    raw = {
        "name": "tiny",
        "seed": 3,
        "model": {"name": "mimo_unet", "overrides": {"base_channel": 4, "num_res": 1}},
        "data": {
            "train": {"type": "synthetic", "photos": photos, "include": ["camera*", "coins*"],
                      "patch_size": 32, "length": 64, "kernel_size": 9,
                      "kernel_sources": ["trajectory"], "trajectory_bank": 16, "seed": 1},
            "val": {"type": "synthetic", "photos": photos, "include": ["camera*"], "patch_size": 32,
                    "length": 2, "kernel_size": 9, "kernel_sources": ["trajectory"],
                    "trajectory_bank": 4, "seed": 2, "augment": False},
            "batch_size": 4,
        },
        "loss": [{"type": "l1", "weight": 1.0}, {"type": "fft_l1", "weight": 0.1}],
        "optim": {"type": "adam", "lr": 1e-3},
        "schedule": {"type": "cosine", "warmup_steps": 2, "min_lr": 1e-5},
        "train": {"total_steps": 6, "out_dir": str(out_dir), "device": "cpu", "ema_decay": 0.9,
                  "grad_clip": 1.0, "ckpt_every": 2, "val_every": 3, "log_every": 1, **train},
    }
    return validate_config(raw, "tiny")


class Killed(Exception):
    pass


def test_killed_run_resumes_to_identical_parameters(tmp_path, shared_data):
    straight = Trainer(tiny_config(tmp_path / "a", shared_data), progress=False)
    straight.fit()

    def kill_at_5(step, logs):
        if step == 5:  # last checkpoint was written at step 4; step 5's work is lost
            raise Killed

    cfg_b = tiny_config(tmp_path / "b", shared_data)
    with pytest.raises(Killed):
        Trainer(cfg_b, progress=False, on_step=kill_at_5).fit()
    assert load_training_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")["step"] == 4
    resumed = Trainer(cfg_b, resume=True, progress=False)
    assert resumed.step == 4
    resumed.fit()
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), f"parameter {k} differs after resume"
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "b" / "weights.safetensors").is_file()
    assert (tmp_path / "b" / "ckpt" / "best.pt").is_file()


def test_existing_run_is_not_overwritten(tmp_path, shared_data):
    cfg = tiny_config(tmp_path / "run", shared_data, total_steps=2)
    Trainer(cfg, progress=False).fit()
    before = (tmp_path / "run" / "ckpt" / "last.pt").read_bytes()
    with pytest.raises(RunExistsError, match="--resume"):
        Trainer(cfg, progress=False)
    assert (tmp_path / "run" / "ckpt" / "last.pt").read_bytes() == before


def test_training_lowers_loss(tmp_path, shared_data):
    losses = []
    cfg = tiny_config(tmp_path / "run", shared_data, total_steps=30, val_every=1000, ckpt_every=1000,
                      ema_decay=None)
    cfg.optim.lr = 3e-3
    Trainer(cfg, progress=False, on_step=lambda s, logs: losses.append(logs["loss"])).fit()
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_bf16_and_grad_clip_steps_are_finite(tmp_path, shared_data):
    logs = Trainer(tiny_config(tmp_path / "run", shared_data, total_steps=2, precision="bf16",
                               grad_clip=1e-3), progress=False).fit()
    assert torch.isfinite(torch.tensor(logs["loss"]))
    assert logs["grad_norm"] > 0


def test_unknown_dataset_type_is_a_clear_error(tmp_path, shared_data):
    cfg = tiny_config(tmp_path / "run", shared_data)
    cfg.data.train = {"type": "nope"}
    with pytest.raises(ValueError, match="data.train.type: unknown dataset 'nope'"):
        Trainer(cfg, progress=False)


def test_recipe_with_auxiliary_networks_resumes_exactly(tmp_path, shared_data):
    """A registered recipe with a trainable and a frozen auxiliary network: both are saved and
    restored, the frozen one gets no gradient and stays in eval mode."""
    from torch import nn

    from deblurkit.engine import make_trainer, register_recipe

    @register_recipe("_test_aux")
    class AuxTrainer(Trainer):
        def setup(self):
            self.add_aux("critic", nn.Conv2d(3, 1, 3, padding=1), trainable=True, lr=5e-4)
            self.add_aux("frozen", nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.5)), trainable=False)

        def train_step(self, batch):
            self.apply_lr()
            lq, gt = batch["lq"], batch["gt"]
            out = self.fwd["net"](lq)[-1]
            loss = (self.aux["frozen"](out) - gt).abs().mean() + self.fwd["critic"](out).mean() ** 2
            for o in (self.optimizer, *self.aux_optimizers.values()):
                o.zero_grad()
            loss.backward()
            for o in (self.optimizer, *self.aux_optimizers.values()):
                o.step()
            self.step += 1
            return {"loss": float(loss.detach())}

    def cfg(d):
        c = tiny_config(d, shared_data)
        c.recipe = {"type": "_test_aux"}
        return c

    straight = make_trainer(cfg(tmp_path / "a"), progress=False)
    frozen_before = [p.clone() for p in straight.aux["frozen"].parameters()]
    straight.fit()
    assert not straight.aux["frozen"].training
    assert all(p.grad is None for p in straight.aux["frozen"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, straight.aux["frozen"].parameters()))

    def kill_at_5(step, logs):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        make_trainer(cfg(tmp_path / "b"), progress=False, on_step=kill_at_5).fit()
    resumed = make_trainer(cfg(tmp_path / "b"), resume=True, progress=False)
    assert type(resumed) is AuxTrainer and resumed.step == 4
    resumed.fit()
    for a, b in zip(straight.aux["critic"].parameters(), resumed.aux["critic"].parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.net.parameters(), resumed.net.parameters()):
        assert torch.equal(a, b)


def test_unknown_recipe_is_a_clear_error(tmp_path, shared_data):
    from deblurkit.engine import make_trainer

    c = tiny_config(tmp_path / "x", shared_data)
    c.recipe = {"type": "nope"}
    with pytest.raises(ValueError, match="recipe.type 'nope' unknown"):
        make_trainer(c, progress=False)


def test_resume_with_another_config_is_a_clear_error(tmp_path, shared_data):
    """Resuming a run folder with a config that builds other networks names the checkpoint."""
    from torch import nn

    from deblurkit.engine import make_trainer, register_recipe

    Trainer(tiny_config(tmp_path / "r", shared_data, total_steps=2, ckpt_every=2), progress=False).fit()
    last = tmp_path / "r" / "ckpt" / "last.pt"

    @register_recipe("_test_one_aux")
    class OneAux(Trainer):
        def setup(self):
            self.add_aux("critic", nn.Conv2d(3, 1, 1), trainable=True)

    c = tiny_config(tmp_path / "r", shared_data, total_steps=4)
    c.recipe = {"type": "_test_one_aux"}
    with pytest.raises(ValueError, match=r"last\.pt: the checkpoint has auxiliary networks \[\] but this recipe builds \['critic'\]"):
        make_trainer(c, resume=True, progress=False)
    c = tiny_config(tmp_path / "r", shared_data, total_steps=4)
    c.model.overrides = {"base_channel": 8, "num_res": 1}
    with pytest.raises(ValueError, match=r"last\.pt: does not match the network"):
        Trainer(c, resume=True, progress=False)
    assert last.is_file()  # nothing written is lost
