"""benchmarks/bench_gan_speed.py: the FLOP count of a GAN epoch (by hand and by torch's counter) and the script.

No timing is asserted: the machine decides those.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gzslbench.core.registry import METHODS
from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.method import TrainingData
from gzslbench.protocol.splits import Split

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gan_speed.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def import_script():
    """benchmarks/bench_gan_speed.py as the module ``bench_gan_speed`` (a script of the checkout)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module("bench_gan_speed")


gan_bench = import_script()

# Tiny widths: 6-d features, 3-d attributes (so 3-d noise), 4 seen classes, 8 training rows in batches of 4.
D, A, SEEN, N_TRAIN = 6, 3, 4, 8
SMALL: dict[str, Any] = {
    "batch_size": 4,
    "critic_iters": 2,
    "generator_hidden": 5,
    "critic_hidden": 7,
    "encoder_hidden": 5,
    "decoder_hidden": 4,
    "pretrain_epochs": 0,
}


def small_config(method: str, **extra: Any) -> dict[str, Any]:
    known = METHODS.get(method).defaults
    overrides = {k: v for k, v in {**SMALL, "epochs": 1, **extra}.items() if k in known}
    return gan_bench.resolve_method_config(method, "cub", overrides=overrides)


def test_clswgan_epoch_flops_by_hand() -> None:
    """f-CLSWGAN, b=4, d=6, a=z=3, hidden 5 (G) and 7 (D), 4 seen classes, 2 critic steps, 2 generator steps."""
    b, d, a, z, hg, hd, c = 4, D, A, A, 5, 7, SEEN
    fake = 2 * b * (z + a) * hg + 2 * b * hg * d  # the critic's generated rows: G forward
    critic = (
        2 * b * a * hd  # attribute block forward
        + 2 * 3 * b * d * hd  # feature block forward on real, generated and interpolated rows
        + 2 * b * hd * d  # penalty: g = v W_x^T
        + 2 * 3 * b * d * hd  # feature block weight gradient over the 3b rows
        + 2 * b * a * hd  # attribute block weight gradient
        + 2 * b * d * hd  # r W_x for the output weight's gradient
    )
    generator_step = (
        3 * 2 * b * hg * d  # G out: forward, weight and input gradients
        + 2 * 2 * b * (z + a) * hg  # G hidden: forward, weight gradient (its input is noise and attributes)
        + 2 * 2 * b * (d + a) * hd  # critic hidden: forward, input gradient (the critic is frozen)
        + 2 * 2 * b * hd  # critic out: forward, input gradient
        + 2 * 2 * b * d * c  # pre-trained classifier: forward, input gradient
    )
    by_hand = 2 * (2 * (fake + critic) + generator_step)
    assert by_hand == 19_424
    gemms = gan_bench.epoch_gemms("f-clswgan", small_config("f-clswgan"), D, A, SEEN, N_TRAIN)
    assert gan_bench.epoch_flops(gemms) == by_hand
    dominant = gan_bench.dominant_gemm(gemms)
    assert (dominant.layer, dominant.kind, dominant.m, dominant.k, dominant.n) == (
        "critic.hidden[x]",
        "forward",
        12,
        6,
        7,
    )


def counted_epoch_flops(method: str, config: dict[str, Any]) -> int:
    """torch's FlopCounterMode over one GAN epoch of the method's real training loop at the tiny widths."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(N_TRAIN) % SEEN
    data = TrainingData(
        torch.rand(N_TRAIN, D, generator=generator),
        y,
        torch.rand(SEEN + 2, A, generator=generator),
        torch.arange(SEEN),
    )
    ctx = RunContext(seed=0, device=torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        METHODS.get(method)().train_generator(data, config, ctx)
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("f-clswgan", {}),
        ("f-vaegan", {}),
        ("tf-vaegan", {}),
        ("tf-vaegan", {"freeze_decoder": True}),
        ("tf-vaegan", {"decoder_weight": 0.0}),
        ("tf-vaegan", {"feedback_loop": 1}),
        ("free", {}),
        ("free", {"freeze_refiner": True, "critic_iters": 2}),
        ("free", {"cycle_weight": 0.0, "passes": 1}),
    ],
)
def test_epoch_flops_match_torch_counter(method: str, extra: dict[str, Any]) -> None:
    """The analytic count equals torch's count of the products the training loop runs (pre-training off)."""
    config = small_config(method, **extra)
    gemms = gan_bench.epoch_gemms(method, config, D, A, SEEN, N_TRAIN)
    assert gan_bench.epoch_flops(gemms) == counted_epoch_flops(method, config)


def test_lsrgan_epoch_flops_match_torch_counter() -> None:
    """LsrGAN's count (an epoch with its unseen step) against torch's count of a whole run with the unseen step in every
    epoch and no pre-training: its epochs, the class relations' similarity products and the scoring after each epoch.
    The SR-loss's batched cosines (bmm, as many as the batch has classes) are left out of both."""
    n_unseen, n_test, epochs = 2, 5, 2
    config = small_config("lsrgan", unseen_after=0, epochs=epochs)
    generator = torch.Generator().manual_seed(0)
    split = Split(
        kind="test",
        train_x=torch.rand(N_TRAIN, D, generator=generator).numpy(),
        train_y=(torch.arange(N_TRAIN) % SEEN).numpy(),
        test_seen_x=torch.rand(n_test, D, generator=generator).numpy(),
        test_seen_y=(torch.arange(n_test) % SEEN).numpy(),
        test_unseen_x=torch.rand(n_test, D, generator=generator).numpy(),
        test_unseen_y=(SEEN + torch.arange(n_test) % n_unseen).numpy(),
        attributes=torch.rand(SEEN + n_unseen, A, generator=generator).numpy(),
        seen=torch.arange(SEEN).numpy(),
        unseen=(SEEN + torch.arange(n_unseen)).numpy(),
        class_ids=torch.arange(SEEN + n_unseen).numpy(),
        defaults_from="cub",
    )
    with FlopCounterMode(display=False) as counter:
        list(METHODS.get("lsrgan")().predict(split, config, RunContext(seed=0, device=torch.device("cpu"))))
    classes = SEEN + n_unseen
    relations = 2 * SEEN * A * SEEN + 2 * n_unseen * A * SEEN
    scoring = 2 * (2 * n_test) * D * classes
    per_epoch = gan_bench.epoch_flops(gan_bench.epoch_gemms("lsrgan", config, D, A, SEEN, N_TRAIN, n_unseen))
    counts = counter.get_flop_counts()["Global"]
    cosines = counts.get(torch.ops.aten.bmm, 0)
    assert 0 < cosines < 0.1 * counter.get_total_flops()
    assert counter.get_total_flops() - cosines == epochs * (per_epoch + scoring) + relations


def test_prior_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="encoded"):
        gan_bench.epoch_gemms("f-vaegan", small_config("f-vaegan", adversarial_noise="prior"), D, A, SEEN, N_TRAIN)


def test_cub_config_takes_the_per_dataset_defaults() -> None:
    """The bench runs the CLI's resolution: CUB's table, and AWA1's for f-CLSWGAN on AWA2 (its nearest)."""
    config = gan_bench.gan_config("f-clswgan", gan_bench.SIZES["awa2"], 2, 1)
    assert (config["lr"], config["syn_num"], config["epochs"], config["cls_epochs"]) == (1e-5, 1800, 2, 1)
    assert gan_bench.gan_config("tf-vaegan", gan_bench.SIZES["cub"], 2, 1)["feedback_loop"] == 2


FIELDS = ("gan_epoch_s", "pretrain_s", "generate_s", "classifier_s", "epoch_gflop", "gflops", "gemm_gflops")


def test_script_runs_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """``--size tiny --gan-epochs 1 --cls-epochs 1`` for one method: every field printed and in the JSON."""
    assert gan_bench.main(["--methods", "f-clswgan", "--size", "tiny", "--gan-epochs", "1", "--cls-epochs", "1"]) == 0
    report = capsys.readouterr().out
    for part in ("GAN epoch", "pretrain", "generate", "classifier", "GFLOP/epoch", "GFLOP/s", "% of"):
        assert part in report
    assert gan_bench.main(["--methods", "f-clswgan", "--size", "tiny", "--gan-epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["methods"]["f-clswgan"]
    for key in FIELDS:
        assert result[key] > 0
    assert result["ceiling_share"] > 0
    assert result["dominant_gemm"]["layer"].startswith("critic")


def test_bad_options_are_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert gan_bench.main(["--methods", "acmr", "--size", "tiny"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown GAN method")
    assert gan_bench.main(["--size", "tiny", "--gan-epochs", "0"]) == 2
