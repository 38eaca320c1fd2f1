"""``depthbench predict CKPT_OR_RUN INPUT... [--top-k K] [--out FILE.csv]``: a trained model on
new inputs.

The network comes from ``checkpoint.load_net``; the preprocessing from the data spec stored in
the checkpoint (``data.spec.data_spec``): an image is opened in the checkpoint's channels (grey or
RGB), its shorter side resized and centre-cropped to the input size (as ``data.images`` does),
scaled to [0, 1] and normalised with the training statistics, as the data module's ``transform``
does. Inputs:

* image files (``.png``, ``.jpg``, ...) and folders of them;
* ``.npy`` arrays of one example (``input_shape``, or ``(H, W)`` for grey images) or a batch of
  them (``(N, *input_shape)``), raw as the data module holds them: uint8 in 0..255 or floats
  in [0, 1];
* for a text model: ``.txt`` files (one text per line) or the texts themselves.

Bad input (a missing file, a wrong shape, an unknown extension) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthbench.core import find_checkpoint, load_checkpoint, load_net, stored_data_spec
from depthbench.data.stats import to_float
from depthbench.errors import CheckpointError, DataError, DepthbenchError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEXT_EXTENSIONS = (".txt",)
ARRAY_EXTENSIONS = (".npy",)
# a text model reads an argument named like one of these as a file, never as a text
FILE_EXTENSIONS = (*IMAGE_EXTENSIONS, *TEXT_EXTENSIONS, *ARRAY_EXTENSIONS, ".csv")
BATCH = 256  # examples per forward pass


@dataclass
class Prediction:
    """The top-k classes of one input: ``(class name, probability)``, most probable first."""

    source: str  # the file, ``file[i]`` for row i of a batch, or the text itself
    top: list[tuple[str, float]]


def _datamodule_state(checkpoint: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The text data module's state Lightning saved in the checkpoint (vocabulary, max_len)."""
    for value in checkpoint.values():
        if isinstance(value, Mapping) and "vocab" in value and "max_len" in value:
            return value
    return None


class Predictor:
    """A checkpoint's network with its preprocessing; ``predict(inputs, top_k)``."""

    def __init__(self, ckpt_or_run: str | Path) -> None:
        self.path = find_checkpoint(ckpt_or_run)
        checkpoint = load_checkpoint(self.path)
        self.net, self.config = load_net(checkpoint)
        spec = stored_data_spec(checkpoint)
        self.input_shape = tuple(int(s) for s in spec["input_shape"])
        n = int(spec["num_classes"])
        names = list(spec.get("classes") or [])
        self.classes = names if len(names) == n else [str(i) for i in range(n)]
        self.mean = torch.tensor(spec["mean"], dtype=torch.float32)
        self.std = torch.tensor(spec["std"], dtype=torch.float32)
        self.text_state = _datamodule_state(checkpoint)
        self.is_text = "vocab_size" in spec.get("model_kwargs", {})
        if self.is_text and self.text_state is None:
            raise CheckpointError(f"{self.path}: a text model's checkpoint without its vocabulary")

    # ---- inputs -> raw tensors ----------------------------------------------------------
    def _image(self, path: Path) -> torch.Tensor:
        """One image file -> uint8 ``input_shape`` (grey or RGB, resized, centre-cropped)."""
        from PIL import Image, UnidentifiedImageError

        from depthbench.data.images import resize_center_crop, to_uint8_tensor

        if len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3):
            raise DataError(
                f"{path}: this model takes inputs of shape {self.input_shape}, not images; "
                "give .npy arrays"
            )
        channels, h, w = self.input_shape
        try:
            with open(path, "rb") as f:
                img = Image.open(f).convert("L" if channels == 1 else "RGB")
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot read image {path} ({type(e).__name__}: {e})") from e
        return to_uint8_tensor(resize_center_crop(img, (h, w)))

    def _array(self, path: Path) -> torch.Tensor:
        """A ``.npy`` file -> a raw batch ``(N, *input_shape)``."""
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if "allow_pickle" in why or "pickled" in why:  # numpy's advice to unpickle: never
                why = "not a plain array: it holds Python objects"
            raise DataError(f"cannot read array {path} ({why})") from e
        shape = self.input_shape
        if a.dtype != np.uint8 and a.dtype.kind != "f":
            raise DataError(f"{path}: dtype {a.dtype}; expected uint8 (0..255) or float ([0, 1])")
        squeezed = shape[1:] if len(shape) == 3 and shape[0] == 1 else None  # grey: (H, W)
        if a.shape == shape or (squeezed and a.shape == squeezed):
            a = a.reshape(1, *shape)
        elif a.shape[1:] == shape or (squeezed and a.ndim == 3 and a.shape[1:] == squeezed):
            a = a.reshape(len(a), *shape)
        else:
            allowed = f"{shape} or (N, *{shape})" + (f", {squeezed} or (N, *{squeezed})"
                                                     if squeezed else "")  # fmt: skip
            raise DataError(f"{path}: array of shape {a.shape}; this model takes {allowed}")
        return torch.from_numpy(np.ascontiguousarray(a))

    def _files(self, path: Path) -> list[tuple[str, torch.Tensor]]:
        """The examples of one file, each scaled by the file's own dtype (``to_float``: uint8
        /255, floats as they are), so an answer never depends on the other inputs."""
        ext = path.suffix.lower()
        if ext in ARRAY_EXTENSIONS:
            batch = to_float(self._array(path))
            if len(batch) == 1:
                return [(str(path), batch[0])]
            return [(f"{path}[{i}]", x) for i, x in enumerate(batch)]
        if ext in IMAGE_EXTENSIONS:
            return [(str(path), to_float(self._image(path)))]
        allowed = ", ".join(IMAGE_EXTENSIONS + ARRAY_EXTENSIONS)
        raise DataError(f"{path}: unknown file type {ext or '(none)'!r}; allowed: {allowed}")

    def _examples(self, inputs: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
        out: list[tuple[str, torch.Tensor]] = []
        for item in inputs:
            path = Path(item).expanduser()
            if path.is_dir():
                known = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS
                files = sorted(p for p in path.rglob("*") if p.suffix.lower() in known)
                if not files:
                    raise DataError(f"{path}: no image or .npy file in this folder")
                for f in files:
                    out += self._files(f)
            elif path.is_file():
                out += self._files(path)
            else:
                raise DataError(f"input not found: {path}")
        return out

    def _texts(self, inputs: Sequence[str]) -> list[str]:
        """Lines of ``.txt`` files and literal texts; a missing ``x.txt`` (or ``.png``...) fails."""
        texts: list[str] = []
        for item in inputs:
            path = Path(item).expanduser()
            if path.is_file() and path.suffix.lower() in TEXT_EXTENSIONS:
                lines = [t.strip() for t in path.read_text(encoding="utf-8").splitlines()]
                texts += [t for t in lines if t]
            elif path.is_file() or path.is_dir():
                raise DataError(f"{path}: a text model reads .txt files (one text per line)")
            elif " " not in item and path.suffix.lower() in FILE_EXTENSIONS:
                raise DataError(f"input not found: {path}")
            else:
                texts.append(item)
        if not texts:
            raise DataError("no text to classify")
        return texts

    # ---- prediction ---------------------------------------------------------------------
    def probabilities(self, x: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)`` of a batch or encoded text.

        A batch is raw as one data module holds it (uint8 or float, one dtype for all); mixed
        inputs are scaled one by one before they are stacked (``predict``).
        """
        with torch.no_grad():
            if isinstance(x, dict):
                return self.net(**x).softmax(-1)
            x = to_float(x)
            view = (1, -1) + (1,) * (x.ndim - 2)
            x = (x - self.mean.view(view)) / self.std.view(view)
            return torch.cat([self.net(b).softmax(-1) for b in x.split(BATCH)])

    def predict(self, inputs: Sequence[str], top_k: int = 3) -> list[Prediction]:
        """The ``top_k`` classes of every input (files, folders or texts, see the module doc)."""
        if self.is_text:
            from depthbench.data.text import Vocabulary, encode_batch, tokenize, unpack

            state = self.text_state or {}
            sources = self._texts(inputs)
            lower = bool(self.config.data.get("lowercase", True))
            words = [tokenize(t, lower) for t in sources]
            packed = encode_batch(words, [0] * len(words), Vocabulary(state["vocab"]),
                                  int(state["max_len"]))  # fmt: skip
            probs = self.probabilities(unpack(packed))
        else:
            examples = self._examples(inputs)
            sources = [name for name, _ in examples]
            probs = self.probabilities(torch.stack([x for _, x in examples]))
        k = max(1, min(top_k, probs.shape[1]))
        values, indices = probs.topk(k, dim=1)
        return [
            Prediction(s, [(self.classes[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)])
            for s, vs, ix in zip(sources, values, indices, strict=True)
        ]


def write_csv(predictions: Sequence[Prediction], path: str | Path) -> Path:
    """One row per input and rank: ``input, rank, class, probability``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "rank", "class", "probability"])
        for p in predictions:
            for rank, (name, prob) in enumerate(p.top, start=1):
                writer.writerow([p.source, rank, name, f"{prob:.6f}"])
    return path


def main(argv: list[str] | None = None) -> None:
    """``depthbench predict CKPT_OR_RUN INPUT... [--top-k K] [--out FILE.csv]``."""
    parser = argparse.ArgumentParser(
        prog="depthbench predict", description="Classify new inputs with a trained checkpoint."
    )
    parser.add_argument(
        "checkpoint",
        help="a .ckpt file, or a run folder: its checkpoints/last.ckpt (the final weights)",
    )
    parser.add_argument("inputs", nargs="+", help="image files/folders, .npy arrays, or texts")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per input")
    parser.add_argument("--out", help="also write the predictions to this CSV file")
    args = parser.parse_args(argv)
    try:
        if args.top_k < 1:
            raise DataError(f"--top-k must be >= 1, got {args.top_k}")
        predictor = Predictor(args.checkpoint)
        predictions = predictor.predict(args.inputs, args.top_k)
    except DepthbenchError as e:
        print(f"depthbench predict: {e}", file=sys.stderr)
        sys.exit(2)
    width = min(max(len(p.source) for p in predictions), 60)
    for p in predictions:
        top = "  ".join(f"{name} ({prob:.3f})" for name, prob in p.top)
        print(f"{p.source:<{width}}  {top}")
    if args.out:
        print(f"wrote {write_csv(predictions, args.out)}", file=sys.stderr)
