"""Loggers: wandb offline by itself (its files read back), TensorBoard, images, secret redaction."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import CONF_DIR, compose_config

from depthbench.core.run_folder.redaction import REDACTED, is_secret_name, redact
from depthbench.core.tracking import log_image

ROOT = Path(CONF_DIR).parent
TINY = [
    "model.width=32",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "callbacks.progress_bar.refresh_rate=0",
]


# ---- reading an offline wandb run ------------------------------------------------------------
def read_wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a ``run-*.wandb`` file (LevelDB log format: 32 KiB blocks of
    ``crc32 (4) | length (2) | type (1) | data`` chunks; type 1 full, 2 first, 3 middle, 4 last),
    after a 7-byte ``:W&B`` header; wandb's own Python reader was removed in wandb 0.2x."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer / zero padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_run_contents(run_dir: Path) -> dict[str, Any]:
    """``{"run": RunRecord, "config": {...}, "summary": {...}, "history": [...]}`` of a run."""
    (wandb_file,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "summary": {}, "history": []}
    for record in read_wandb_records(wandb_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "summary":
            for u in record.summary.update:
                out["summary"][u.key or "/".join(u.nested_key)] = json.loads(u.value_json)
        elif kind == "history":
            out["history"].append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
    return out


# ---- redaction -------------------------------------------------------------------------------
def test_secret_names() -> None:
    for name in ("api_key", "WANDB_API_KEY", "hf_token", "client_secret", "password", "key"):
        assert is_secret_name(name), name
    for name in ("keys", "monkey", "tokenizer", "lr", "auto_insert_metric_name"):
        assert not is_secret_name(name), name


def test_redact_keys_overrides_and_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    cfg = {
        "logger": {"wandb": {"api_key": "abc", "project": "p"}},
        "note": "uses tok-0123456789 inside",
        "overrides": ["+secrets.password=hunter2", "model.depth=4"],
        "dirname": "+x.hf_token=t1,model.depth=4,monkey=3",
        "empty_token": None,
    }
    out = redact(cfg)
    assert out["logger"]["wandb"] == {"api_key": REDACTED, "project": "p"}
    assert out["note"] == f"uses {REDACTED} inside"
    assert out["overrides"] == [f"+secrets.password={REDACTED}", "model.depth=4"]
    assert out["dirname"] == f"+x.hf_token={REDACTED},model.depth=4,monkey=3"
    assert out["empty_token"] is None
    assert cfg["logger"]["wandb"]["api_key"] == "abc"  # a copy, the input is untouched


def test_wandb_goes_offline_without_key_or_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthbench.core import tracking

    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setattr(tracking, "_AUTO_OFFLINE", [])
    assert tracking.wandb_offline_reason() == "no WANDB_API_KEY and no ~/.netrc entry"
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: refused at once
    assert tracking.wandb_offline_reason() == "127.0.0.1 is not reachable"
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login user password p\n")
    (tmp_path / ".netrc").chmod(0o600)  # netrc refuses a file others can read
    monkeypatch.delenv("WANDB_API_KEY")
    assert tracking.wandb_api_key_available()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.wandb_offline_reason() == "WANDB_MODE=offline"


# ---- a real run with all loggers, wandb offline by itself ------------------------------------
@pytest.mark.process
def test_many_loggers_wandb_offline_run_holds_metrics_and_config(tmp_path: Path) -> None:
    """logger=many without a wandb key: offline run whose files hold the config and metrics;
    TensorBoard and CSV written too; no secret (env or command line) anywhere in the folder."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    env["DEPTHBENCH_TEST_TOKEN"] = "tok-secret-value-42"  # a secret that must not leak
    cmd = [sys.executable, "train.py", "logger=many", "tags=[unit,many]", *TINY,
           f"hydra.run.dir={run_dir}", "+notes.hf=${oc.env:DEPTHBENCH_TEST_TOKEN}",
           "+notes.password=hunter2-cli-secret"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb: offline (no WANDB_API_KEY" in proc.stdout + proc.stderr
    assert "wandb sync" in proc.stdout + proc.stderr

    metrics = json.loads((run_dir / "metrics.json").read_text())
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    contents = wandb_run_contents(wandb_run)
    config = contents["config"]
    assert config["model"]["width"] == 32 and config["trainer"]["max_epochs"] == 2
    assert config["optimizer"]["_target_"] == "torch.optim.AdamW"  # the config, not a partial
    assert config["notes"] == {"hf": REDACTED, "password": REDACTED}
    assert contents["summary"]["val/acc"] == pytest.approx(metrics["val/acc"])
    val_history = [row["val/acc"] for row in contents["history"] if "val/acc" in row]
    assert len(val_history) == 2 and val_history[-1] == pytest.approx(metrics["val/acc"])
    assert (
        list(contents["run"].tags) == ["unit", "many"] and contents["run"].project == "depthbench"
    )
    assert contents["run"].run_group == ""  # a single run: no sweep group

    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "csv" / "metrics.csv").is_file()
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"tok-secret-value-42" not in data, path
            assert b"hunter2-cli-secret" not in data, path


def test_log_image_to_tensorboard_and_wandb_and_not_csv(tmp_path: Path) -> None:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from depthbench.core.tracking import finish_wandb, wandb_logger
    from depthbench.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "plot.png"
    fig.savefig(png)
    loggers = [
        CSVLogger(tmp_path, name="csv", version=""),
        TensorBoardLogger(tmp_path / "tb", name=None, version=""),
        wandb_logger(save_dir=str(tmp_path), offline=True, project="unit"),
    ]
    trainer = L.Trainer(logger=loggers, accelerator="cpu", enable_progress_bar=False)
    log_image(trainer, "diagnostics/plot", png)
    log_image(trainer, "diagnostics/figure", fig)
    for logger in loggers:
        logger.finalize("success")
    finish_wandb()
    plt.close(fig)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) >= {"diagnostics/plot", "diagnostics/figure"}
    (wandb_run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert len(list((wandb_run / "files" / "media" / "images").rglob("*.png"))) == 2
    assert not list((tmp_path / "csv").rglob("*.png"))


def test_logger_configs_compose(tmp_path: Path) -> None:
    cfg = compose_config(["logger=many", "tags=[a]"], tmp_path)
    assert set(cfg.logger) == {"csv", "tensorboard", "wandb"}
    assert cfg.logger.wandb._target_ == "depthbench.core.tracking.wandb_logger"
    assert list(cfg.logger.wandb.tags) == ["a"] and cfg.logger.wandb.save_dir == str(tmp_path)
    assert cfg.logger.tensorboard.save_dir == f"{tmp_path}/tensorboard"
