"""Data-parallel training and sharded evaluation: 2 gloo processes on the CPU give the results
of one process (same global batch), for the supervised recipe, a GAN-style recipe with a
trainable discriminator and its own optimiser, a killed-and-resumed distributed run, and
``deblurkit evaluate``'s table.

One ``torch.multiprocessing.spawn`` of 2 processes does all distributed runs (process start-up
dominates the cost); each test compares its part with a one-process run made in the test.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from deblurkit.engine import Trainer, make_trainer, register_recipe, validate_config

STEPS = 4


def tiny_config(out_dir, data_dir, recipe="supervised", **train):
    photos = str(data_dir / "photos" / "classic")
    raw = {
        "name": "tiny_ddp",
        "seed": 5,
        "model": {"name": "mimo_unet", "overrides": {"base_channel": 4, "num_res": 1}},
        "data": {
            "train": {"type": "synthetic", "photos": photos, "include": ["camera*", "coins*"],
                      "patch_size": 32, "length": 16, "kernel_size": 9,
                      "kernel_sources": ["trajectory"], "trajectory_bank": 8, "seed": 1},
            "val": {"type": "synthetic", "photos": photos, "include": ["camera*"], "patch_size": 32,
                    "length": 3, "kernel_size": 9, "kernel_sources": ["trajectory"],
                    "trajectory_bank": 4, "seed": 2, "augment": False},
            "batch_size": 4,
        },
        "loss": [{"type": "l1", "weight": 1.0}, {"type": "fft_l1", "weight": 0.1}],
        "optim": {"type": "adam", "lr": 1e-3},
        "schedule": {"type": "cosine", "warmup_steps": 1, "min_lr": 1e-5},
        "recipe": {"type": recipe},
        "train": {"total_steps": STEPS, "out_dir": str(out_dir), "device": "cpu", "ema_decay": 0.9,
                  "grad_clip": 1.0, "ckpt_every": 2, "val_every": 2, "log_every": 1, **train},
    }
    return validate_config(raw, "tiny_ddp")


@register_recipe("_test_gan_ddp")
class TinyGAN(Trainer):
    """LSGAN-style recipe: a trainable discriminator (own optimiser, called twice before one
    backward in its step and frozen with requires_grad off in the generator step) and a frozen
    auxiliary network in the generator loss."""

    def setup(self):
        torch.manual_seed(11)
        self.add_aux("disc", nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                           nn.Conv2d(4, 1, 3, padding=1)), trainable=True, lr=2e-3,
                     betas=(0.5, 0.999))
        self.add_aux("frozen", nn.Conv2d(3, 3, 1), trainable=False)
        self.seen = []  # per-sample sums of the inputs this process trained on


    def train_step(self, batch):
        self.apply_lr()
        lq, gt = batch["lq"].to(self.device), batch["gt"].to(self.device)
        self.seen.append(lq.sum((1, 2, 3)))
        disc, opt_d = self.aux["disc"], self.aux_optimizers["disc"]
        self.net.train()
        out = self.fwd["net"](lq)[-1]
        disc.requires_grad_(True)
        loss_d = ((self.fwd["disc"](gt) - 1) ** 2).mean() + (self.fwd["disc"](out.detach()) ** 2).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        disc.requires_grad_(False)
        loss_g = ((out - gt).abs().mean() + 0.1 * ((self.fwd["disc"](out) - 1) ** 2).mean()
                  + 0.1 * (self.aux["frozen"](out) - gt).abs().mean())
        self.check_finite(loss_g, {})
        self.optimizer.zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizer.step()
        disc.requires_grad_(True)
        if self.ema:
            self.ema.update(self.net)
        self.step += 1
        return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach())}


class Killed(Exception):
    pass


def _params(trainer) -> dict:
    out = {f"net.{k}": v.detach().clone() for k, v in trainer.net.state_dict().items()}
    for name, m in trainer.aux.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    return out


def _eval_args(data_root: Path, out: Path) -> list[str]:
    return ["evaluate", "--data", str(data_root), "--layout", "gopro", "--device", "cpu", "--tile", "off",
            "-o", str(out)]


def _worker(rank: int, world: int, port: int, root: str, data_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    root_p, data_p = Path(root), Path(data_dir)

    from deblurkit.cli import app
    from deblurkit.engine.distributed import cleanup, info

    # 1) supervised, straight; 2) GAN recipe, straight
    for recipe in ("supervised", "_test_gan_ddp"):
        t = make_trainer(tiny_config(root_p / f"ddp_{recipe}", data_p, recipe), progress=False)
        assert t.dist.world_size == world and isinstance(t.fwd["net"], nn.parallel.DistributedDataParallel)
        t.fit()
        torch.save({**_params(t), "seen": torch.stack(getattr(t, "seen", [torch.zeros(1)]))},
                   root_p / f"ddp_{recipe}.rank{rank}.pt")

    # 3) supervised, killed after step 3 (checkpoint at 2) and resumed
    def kill(step, logs):
        if step == 3:
            raise Killed

    cfg = tiny_config(root_p / "ddp_resume", data_p)
    try:
        make_trainer(cfg, progress=False, on_step=kill).fit()
    except Killed:
        pass
    t = make_trainer(cfg, resume=True, progress=False)
    assert t.step == 2
    t.fit()
    torch.save(_params(t), root_p / f"ddp_resume.rank{rank}.pt")

    # 4) sharded evaluation through the CLI (the process group is left by the command)
    assert info().active
    from deblurkit.engine import evaluate_indexed

    seen = []
    pairs = [(f"img{i}", torch.full((3, 16, 16), i / 10), torch.full((3, 16, 16), 0.5)) for i in range(5)]
    evaluate_indexed(lambda x: seen.append(float(x.mean())) or x, pairs.__getitem__, 5, progress=False)
    torch.save(torch.tensor(seen), root_p / f"eval_seen.rank{rank}.pt")
    app(_eval_args(root_p / "evaldata", root_p / "eval_ddp"), standalone_mode=False)
    cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_eval_data(root: Path) -> None:
    from deblurkit.io import save_image

    g = torch.Generator().manual_seed(0)
    for i in range(5):  # odd count: the ranks get 3 and 2 images
        sharp = torch.rand(3, 40, 48, generator=g)
        blur = nn.functional.avg_pool2d(sharp[None], 5, 1, 2, count_include_pad=False)[0]
        scene = "s1" if i < 3 else "s2"
        save_image(root / "test" / scene / "sharp" / f"{i:03d}.png", sharp)
        save_image(root / "test" / scene / "blur" / f"{i:03d}.png", blur)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("ddp")
    _make_eval_data(root / "evaldata")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(root), str(shared_data)), nprocs=2)
    return root


def _assert_same(a: dict, b: dict, atol=2e-5):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4), (
            k, float((a[k].float() - b[k].float()).abs().max()))


def _assert_trained(before: dict, after: dict, prefix: str):
    moved = [k for k in after if k.startswith(prefix) and after[k].is_floating_point()
             and not torch.equal(before[k], after[k])]
    assert moved, f"no parameter of {prefix} changed: nothing was trained"


@pytest.mark.parametrize("recipe", ["supervised", "_test_gan_ddp"])
def test_two_gloo_processes_match_one_process(ddp_runs, tmp_path, shared_data, recipe):
    single = make_trainer(tiny_config(tmp_path / "one", shared_data, recipe), progress=False)
    init = _params(single)
    single.fit()
    ref = _params(single)
    _assert_trained(init, ref, "net.")
    if recipe != "supervised":
        _assert_trained(init, ref, "disc.")
        _assert_same({k: v for k, v in init.items() if k.startswith("frozen.")},
                     {k: v for k, v in ref.items() if k.startswith("frozen.")}, atol=0)
    r0 = torch.load(ddp_runs / f"ddp_{recipe}.rank0.pt")
    r1 = torch.load(ddp_runs / f"ddp_{recipe}.rank1.pt")
    seen0, seen1 = r0.pop("seen"), r1.pop("seen")
    if recipe != "supervised":  # each process trained on its half of every global batch
        assert seen0.shape == seen1.shape == (STEPS, 2)
        assert torch.allclose(torch.cat([seen0, seen1], 1), torch.stack(single.seen))
    _assert_same(r0, r1, atol=0)  # replicas stay identical
    _assert_same(r0, ref)
    # rank 0 alone wrote the run folder: checkpoints and exported weights
    run = ddp_runs / f"ddp_{recipe}"
    assert (run / "ckpt" / "last.pt").is_file() and (run / "weights.safetensors").is_file()
    st = torch.load(run / "ckpt" / "last.pt", weights_only=False)
    assert st["step"] == STEPS and st["world_size"] == 2 and len(st["rng_ranks"]) == 2


def test_killed_distributed_run_resumes_to_the_one_process_result(ddp_runs, tmp_path, shared_data):
    single = Trainer(tiny_config(tmp_path / "one", shared_data), progress=False)
    single.fit()
    _assert_same(torch.load(ddp_runs / "ddp_resume.rank0.pt"), _params(single))
    _assert_same(torch.load(ddp_runs / "ddp_resume.rank1.pt"), _params(single))


def test_sharded_evaluation_gives_the_one_process_table(ddp_runs, tmp_path):
    from deblurkit.cli import app

    seen0 = torch.load(ddp_runs / "eval_seen.rank0.pt")
    seen1 = torch.load(ddp_runs / "eval_seen.rank1.pt")
    assert torch.allclose(seen0, torch.tensor([0.0, 0.2, 0.4])) and torch.allclose(seen1, torch.tensor([0.1, 0.3]))
    app(_eval_args(ddp_runs / "evaldata", tmp_path / "eval_one"), standalone_mode=False)
    one = (tmp_path / "eval_one" / "results.csv").read_text()
    two = (ddp_runs / "eval_ddp" / "results.csv").read_text()
    assert len(one.strip().splitlines()) == 6  # header + 5 images, in order
    assert two == one
    assert (ddp_runs / "eval_ddp" / "results.md").read_text() == (tmp_path / "eval_one" / "results.md").read_text()


def test_global_batch_must_split_evenly(shared_data, tmp_path):
    from deblurkit.engine.distributed import shard_batch

    assert shard_batch([5, 1, 7, 2], 1, 2) == [7, 2]
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        shard_batch([5, 1, 7], 0, 2)
