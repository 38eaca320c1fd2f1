"""``depthbench predict`` and eval's explanations on a tiny trained digits checkpoint."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, ROOT, compose_config
from PIL import Image
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from depthbench.core import build_data, evaluate, find_checkpoint, train
from depthbench.core.confusion import read_confusion_csv
from depthbench.tools.predict import Predictor, main

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A digits MLP trained for 30 steps (well above chance); its run folder."""
    run = tmp_path_factory.mktemp("run")
    steps = ["trainer.max_epochs=3", "+trainer.limit_train_batches=10"]
    train(compose_config([*steps, *FAST[2:], "logger=none", "test=false"], run))
    return run


@pytest.fixture(scope="module")
def evaluated(trained: Path, tmp_path_factory) -> tuple[Path, dict]:
    """The eval of ``trained`` given as a run folder (``predict`` takes the same checkpoint from
    it) on the whole digits test split: (eval folder, metrics)."""
    out = tmp_path_factory.mktemp("eval")
    assert find_checkpoint(trained) == trained / "checkpoints" / "last.ckpt"
    metrics = evaluate(compose_config([f"ckpt_path={trained}"], out, "eval"))
    return out, metrics


def test_predict_npy_matches_eval(trained: Path, evaluated, tmp_path: Path, capsys) -> None:
    """The classes predicted for raw test samples saved as .npy (one sample, and a batch in
    uint8 without the channel axis) are eval's predictions for those samples."""
    eval_dir, _ = evaluated
    with open(eval_dir / "predictions.csv") as f:
        eval_pred = [row["predicted"] for row in csv.DictReader(f)]
    x = build_data(compose_config(["logger=none"], tmp_path)).splits["test"][0][:12]
    np.save(tmp_path / "one.npy", x[0].numpy())  # (1, 8, 8) float in [0, 1]
    np.save(tmp_path / "batch.npy", x[:12].numpy())
    predictions = Predictor(trained).predict([str(tmp_path / "one.npy"),
                                              str(tmp_path / "batch.npy")], top_k=3)  # fmt: skip
    assert [p.top[0][0] for p in predictions] == eval_pred[:1] + eval_pred[:12]
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] for p in predictions)
    assert predictions[1].source.endswith("batch.npy[0]")

    out = tmp_path / "pred.csv"
    main([str(trained), str(tmp_path / "one.npy"), "--top-k", "2", "--out", str(out)])
    printed = capsys.readouterr().out.split()
    assert printed[1] == eval_pred[0]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2"] and rows[0]["class"] == eval_pred[0]


def test_predict_image_files_and_folder(trained: Path, tmp_path: Path) -> None:
    """An RGB PNG of a test digit, 2 black columns added each side (cut by the centre crop),
    gets the class of its 8x8 array."""
    x = build_data(compose_config(["logger=none"], tmp_path)).splits["test"][0][:3]
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        pixels = (x[i, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(np.pad(pixels, ((0, 0), (2, 2)))).convert("RGB").save(folder / f"d{i}.png")
        np.save(tmp_path / f"d{i}.npy", pixels)  # (8, 8) uint8: the grey image without channel
    predictor = Predictor(find_checkpoint(trained))
    from_png = [p.top[0][0] for p in predictor.predict([str(folder)])]
    from_npy = [p.top[0][0] for p in predictor.predict([str(tmp_path / f"d{i}.npy")
                                                        for i in range(3)])]  # fmt: skip
    assert len(from_png) == 3 and from_png == from_npy


def test_an_answer_does_not_depend_on_its_neighbours(trained: Path, tmp_path: Path) -> None:
    """A uint8 PNG, a uint8 .npy and a float .npy of test digits get the same probabilities
    alone as beside each other: each input is scaled by its own dtype, not by the batch's."""
    x = build_data(compose_config(["logger=none"], tmp_path)).splits["test"][0][:3]
    pixels = [(x[i, 0].numpy() * 255).round().astype(np.uint8) for i in range(3)]
    Image.fromarray(pixels[0]).save(tmp_path / "digit.png")
    np.save(tmp_path / "uint8.npy", pixels[1])
    np.save(tmp_path / "float.npy", pixels[2].astype(np.float32) / 255)
    inputs = [str(tmp_path / name) for name in ("digit.png", "uint8.npy", "float.npy")]
    predictor = Predictor(trained)
    mixed = predictor.predict(inputs, top_k=10)
    for one, answer in zip(inputs, mixed, strict=True):
        alone = predictor.predict([one], top_k=10)[0]
        assert dict(answer.top) == pytest.approx(dict(alone.top), abs=1e-5), one
    # the uint8 digit scaled by 1/255 is the float one: the same answer, whatever its company
    np.save(tmp_path / "float1.npy", pixels[1].astype(np.float32) / 255)
    as_float = predictor.predict([str(tmp_path / "float1.npy")], top_k=10)[0]
    assert dict(mixed[1].top) == pytest.approx(dict(as_float.top), abs=1e-5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "input not found"),
        (lambda d: np.save(d / "wrong.npy", np.zeros((3, 5))) or d / "wrong.npy", "shape (3, 5)"),
        (lambda d: (d / "notes.docx").write_text("x") and d / "notes.docx", "unknown file type"),
        (lambda d: (d / "text.npy").write_text("x") and d / "text.npy", "holds Python objects"),
        (
            lambda d: (d / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00") and d / "cut.npy",
            "cannot read array",
        ),
    ],
    ids=["missing", "wrong-shape", "unknown-extension", "not-an-array", "truncated-array"],
)
def test_predict_bad_input_is_one_line_exit_2(trained: Path, tmp_path: Path, make, message,
                                              capsys):  # fmt: skip
    """Bad input: one line on stderr naming the problem, exit code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(trained), str(make(tmp_path))])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and message in lines[0]
    assert "allow_pickle" not in lines[0]  # numpy's advice to unpickle never reaches the user


@pytest.mark.process
@pytest.mark.slow  # a fresh interpreter importing torch and Lightning: ~10-30 s here
def test_predict_command_bad_input_has_no_traceback(trained: Path, tmp_path: Path) -> None:
    """``depthbench predict`` as a process: a missing input is one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "depthbench.cli", "predict", str(trained), str(tmp_path / "x.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"depthbench predict: input not found: {tmp_path / 'x.png'}"


def test_eval_confusion_matrix_and_per_class_accuracy(evaluated) -> None:
    """confusion.csv sums to the test-set size, its diagonal over the total is test/acc, and
    metrics.json holds the per-class accuracy of its rows; the figures exist."""
    eval_dir, metrics = evaluated
    names, matrix = read_confusion_csv(eval_dir / "confusion.csv")
    assert names == DIGITS
    assert int(matrix.sum()) == 360 == metrics["test/examples"]  # 20% of 1,797 digits
    assert float(matrix.diag().sum()) / float(matrix.sum()) == pytest.approx(metrics["test/acc"])
    saved = json.loads((eval_dir / "metrics.json").read_text())
    per_class = saved["test/acc_per_class"]
    assert list(per_class) == DIGITS
    rows = matrix.sum(dim=1)
    assert per_class["3"] == pytest.approx(float(matrix[3, 3] / rows[3]))
    assert (eval_dir / "confusion.png").stat().st_size > 0
    assert (eval_dir / "wrong_examples.png").stat().st_size > 0


def test_confusion_figures_carry_class_names(tmp_path: Path) -> None:
    """The confusion heat map's tick labels are the class names; the wrong-examples grid
    titles say the true and predicted class, the most confident mistake first."""
    import matplotlib

    from depthbench.core import confusion

    names = ["cat", "dog", "frog"]
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 2, 1, 2])  # two mistakes: frog->dog (0.7), dog->cat (0.6)
    drawn = []
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn.append(fig)
        return real_savefig(fig, *args, **kwargs)

    images = torch.rand(4, 1, 8, 8)
    matrix = MulticlassConfusionMatrix(3)(probs, labels)
    per_class = MulticlassAccuracy(3, average=None)(probs, labels)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(matplotlib.figure.Figure, "savefig", keep)
        fields = confusion.explain_predictions(
            tmp_path, names, matrix, per_class, (probs, labels), images
        )
    heat, grid = drawn
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == names
    titles = [ax.get_title() for ax in grid.axes if ax.get_title()]
    assert titles == ["true frog\npredicted dog (0.70)", "true dog\npredicted cat (0.60)"]
    assert fields["test/acc_per_class"] == {"cat": 1.0, "dog": 0.0, "frog": 0.5}


def test_predict_text_lines_and_files(tmp_path: Path) -> None:
    """A text model classifies literal texts and a .txt file's lines with the vocabulary of
    its checkpoint: the same probabilities as the net on the data module's own encoding."""
    from test_text_csv import write_csv

    from depthbench.core.run_folder.checkpoint import load_net

    train_file = write_csv(tmp_path / "train.csv", 120)
    cfg = compose_config(
        ["data=text_csv", f"data.path={train_file}", "data.max_len=16", "data.batch_size=16",
         "model=transformer", "model.pool=mean", "model.dim=16", "model.depth=1", "model.heads=2",
         "logger=none", *FAST],
        tmp_path / "run",
    )  # fmt: skip
    train(cfg)
    texts = ["The film was great, said the critic.", "an awful, boring film"]
    (tmp_path / "lines.txt").write_text(f"{texts[1]}\n\n")
    predictions = Predictor(tmp_path / "run").predict([texts[0], str(tmp_path / "lines.txt")], 2)
    assert [p.source for p in predictions] == texts
    dm = build_data(cfg)
    net, _ = load_net(find_checkpoint(tmp_path / "run"))
    for text, p in zip(texts, predictions, strict=True):
        with torch.no_grad():
            probs = net(**dm.encode(text)).softmax(-1)[0]
        assert {name for name, _ in p.top} == {"neg", "pos"}
        assert p.top[0] == (dm.classes[int(probs.argmax())], pytest.approx(float(probs.max())))
