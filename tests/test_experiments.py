"""Every experiment config composes, and its sweep expands to the intended runs."""

from __future__ import annotations

import pytest
from helpers import ROOT, compose_with_hydra, sweep_jobs

# experiment -> number of runs of `python train.py -m experiment=NAME`
EXPECTED_RUNS = {
    "vanishing_gradients": 7 * 3 * 2,  # depth x activation x init
    "vanishing_gradients_full": 8 * 3 * 2,
    "degradation": 2 * 2 * 4,  # {mlp, cnn} x {plain, residual} x depth
    "degradation_full": 5 * 2,  # CIFAR CNN depth x {plain, residual}
    "batchnorm": 3 * 2 * 2,  # depth x {BN off, on} x {relu, sigmoid}
    "batchnorm_full": 7 * 2 * 2,
    "thousand_layers": 2,  # plain vs residual
    "thousand_layers_full": 2,  # plain vs residual (both pre-activation with BN)
    "resnet_cifar": 5,  # ResNet-20/32/44/56/110
    "resnet_cifar_full": 10,
    "transformer": 4,  # {transformer, cnn} x {fashion_mnist, mnist1d}
    "transformer_full": 4,
    "transfer": 8,  # {pretrained+frozen, scratch} x 4 training-set sizes
    "transfer_full": 8,
    "cpu_vs_gpu": 4,  # {cpu, gpu} x 2 batch sizes
}


def test_every_lesson_experiment_exists():
    names = {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    assert set(EXPECTED_RUNS) <= names


@pytest.mark.parametrize("experiment", sorted(EXPECTED_RUNS))
def test_experiment_sweep_expands_and_its_last_job_composes(experiment):
    jobs = sweep_jobs(compose_with_hydra([f"experiment={experiment}"]))
    assert len(jobs) == EXPECTED_RUNS[experiment]
    assert len({tuple(j) for j in jobs}) == len(jobs)  # no duplicate runs
    # the last job (every swept key at its last value) composes, and the values arrive
    cfg = compose_with_hydra([f"experiment={experiment}", *jobs[-1]])
    assert cfg.task_name == experiment
    assert experiment.removesuffix("_full") in cfg.tags
    for override in jobs[-1]:
        key, value = override.split("=", 1)
        if "/" not in key and key not in ("model", "data", "accelerator"):
            assert str(_select(cfg, key)).lower() == value.lower().replace("null", "none")


def _select(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def test_group_sweeps_pick_the_right_networks():
    cfg = compose_with_hydra(["experiment=transformer", "experiment/arch@arch=cnn", "data=mnist1d"])
    assert cfg.model._target_.endswith("DeepCNN") and cfg.model.params == 200000
    assert cfg.data._target_.endswith("MNIST1DDataModule")
    cfg = compose_with_hydra(
        ["experiment=transfer", "experiment/transfer_init@transfer_init=scratch"]
    )
    assert cfg.model.weights is None and cfg.model.freeze is False
    cfg = compose_with_hydra(["experiment=degradation", "model=cnn", "model.residual=true"])
    assert cfg.model._target_.endswith("DeepCNN") and cfg.model.batchnorm is True
    cfg = compose_with_hydra(["experiment=cpu_vs_gpu", "accelerator=gpu"])
    assert cfg.trainer.accelerator == "gpu"


def test_diagnostics_list_composes_into_one_dict():
    cfg = compose_with_hydra(["diagnostics=[gradflow,activations,features,attention]"])
    assert set(cfg.diagnostics) == {"gradflow", "activations", "features", "attention"}
    assert all("_target_" in c for c in cfg.diagnostics.values())
    assert "diagnostics" not in compose_with_hydra([]) or not compose_with_hydra([]).diagnostics
