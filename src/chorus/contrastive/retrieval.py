"""Cross-modal retrieval metrics (Recall@K) with multiple correct matches, computed in blocks.

What: for every query embedding, rank the gallery by dot product (cosine for
normalised embeddings) and report the fraction of queries with at least one
correct match in the top k — the image↔text Recall@K of COCO/Flickr30k
retrieval benchmarks (as reported by Radford et al. 2021 and Cherti et al. 2023).

Why blocks: the full Nq×Ng score matrix is 40 GB at 100k×100k, so scores are
computed in ``chunk_size``×``chunk_size`` blocks (memory O(chunk_size²)). In
one pass a query keeps the highest score of its positives and the K highest
scores of its negatives (K = max(ks)); it is a hit at k exactly when its best
positive beats its k-th best negative. Both come from the same matmul, so
duplicated embeddings tie exactly.

Ties count against the query: a negative scoring *equal* to the best
positive outranks it. That makes a collapsed model (all embeddings equal)
score 0 rather than 100 %, which is the honest answer.

Baseline to beat: random embeddings give Recall@k ≈ k·(positives per
query)/Ng.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from chorus.contrastive.model import ContrastiveModel
from chorus.data import Collate
from chorus.data.captions import fill_template
from chorus.errors import DataError
from chorus.eval.mode import evaluating

__all__ = ["retrieval_metrics", "image_text_retrieval", "dataset_retrieval"]

Positives = Tensor | Sequence[Iterable[int]]


def _positive_index(positives: Positives, n_queries: int, n_gallery: int, device: torch.device) -> Tensor:
    """Normalise the positives to a LongTensor [Nq, M] of gallery indices, −1 = padding."""
    if isinstance(positives, Tensor):
        index = positives.to(device=device, dtype=torch.long)
        if index.ndim == 1:
            index = index.view(-1, 1)
    else:
        rows = [sorted(set(p)) for p in positives]
        width = max((len(r) for r in rows), default=0)
        index = torch.full((len(rows), max(width, 1)), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            index[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        index = index.to(device)
    if index.ndim != 2 or index.shape[0] != n_queries:
        raise DataError(f"positives must give one entry per query ({n_queries}), got shape {tuple(index.shape)}")
    if (index >= n_gallery).any() or (index < -1).any():
        raise DataError(f"positive gallery indices must lie in [0, {n_gallery}) (−1 = padding)")
    empty = (index < 0).all(dim=1).nonzero().flatten()
    if empty.numel():
        raise DataError(f"{empty.numel()} queries have no positive, e.g. query {empty[0].item()}")
    return index


def _hits(queries: Tensor, gallery: Tensor, positives: Tensor, ks: Sequence[int], chunk_size: int) -> Tensor:
    """Bool [Nq, len(ks)]: whether each query has a positive in its top k."""
    n_gallery = gallery.shape[0]
    top_n = min(max(ks), n_gallery)
    dtype = torch.promote_types(queries.dtype, torch.float32)
    hits = []
    with torch.no_grad(), torch.autocast(device_type=queries.device.type, enabled=False):
        for q0 in range(0, queries.shape[0], chunk_size):
            q = queries[q0 : q0 + chunk_size].to(dtype)
            pos = positives[q0 : q0 + chunk_size]
            best = torch.full((q.shape[0],), -torch.inf, dtype=dtype, device=q.device)
            tops = []
            for g0 in range(0, n_gallery, chunk_size):
                scores = q @ gallery[g0 : g0 + chunk_size].to(dtype).T
                local = pos - g0
                rows, slots = ((pos >= 0) & (local >= 0) & (local < scores.shape[1])).nonzero(as_tuple=True)
                cols = local[rows, slots]
                best = best.scatter_reduce(0, rows, scores[rows, cols], reduce="amax")
                scores[rows, cols] = -torch.inf  # positives are not negatives
                tops.append(scores.topk(min(top_n, scores.shape[1]), dim=1).values)
            negatives = torch.cat(tops, dim=1).topk(top_n, dim=1).values
            hits.append(
                torch.stack(
                    [best > negatives[:, k - 1] if k <= top_n else torch.ones_like(best, dtype=torch.bool) for k in ks],
                    dim=1,
                )
            )
    return torch.cat(hits)


def retrieval_metrics(
    queries: Tensor,
    gallery: Tensor,
    query_to_gallery: Positives,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 4096,
) -> dict[str, float]:
    """``{"R@1": ..., "R@5": ..., "R@10": ...}`` for queries [Nq, D] against gallery [Ng, D].

    ``query_to_gallery`` gives each query's correct gallery indices: a list of
    sets, a LongTensor [Nq] (one match each) or [Nq, k] padded with −1.
    Scores are plain dot products: pass normalised embeddings for cosine.
    """
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise DataError(
            f"need queries [Nq, D] and gallery [Ng, D], got {tuple(queries.shape)} and {tuple(gallery.shape)}"
        )
    if not ks or min(ks) < 1:
        raise DataError(f"ks must be positive integers, got {tuple(ks)}")
    gallery = gallery.to(queries.device)
    positives = _positive_index(query_to_gallery, queries.shape[0], gallery.shape[0], queries.device)
    recall = _hits(queries, gallery, positives, ks, chunk_size).double().mean(dim=0)
    return {f"R@{k}": r.item() for k, r in zip(ks, recall)}


def image_text_retrieval(
    image_emb: Tensor,
    text_emb: Tensor,
    text_to_image: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 4096,
) -> dict[str, float]:
    """Recall@K both ways: ``image_to_text_R@k`` (hit if any of the image's captions is in
    the top k) and ``text_to_image_R@k`` (hit if the caption's one image is).

    ``text_to_image`` [Nt] gives the image index of every caption; every image
    needs at least one caption.
    """
    if text_to_image.shape != (text_emb.shape[0],):
        raise DataError(f"text_to_image must be [Nt={text_emb.shape[0]}], got {tuple(text_to_image.shape)}")
    image_to_texts: list[set[int]] = [set() for _ in range(image_emb.shape[0])]
    for text, image in enumerate(text_to_image.tolist()):
        if not 0 <= image < len(image_to_texts):
            raise DataError(f"text_to_image[{text}] = {image} is not an image index in [0, {len(image_to_texts)})")
        image_to_texts[image].add(text)
    i2t = retrieval_metrics(image_emb, text_emb, image_to_texts, ks, chunk_size)
    t2i = retrieval_metrics(text_emb, image_emb, text_to_image, ks, chunk_size)
    return {f"image_to_text_{k}": v for k, v in i2t.items()} | {f"text_to_image_{k}": v for k, v in t2i.items()}


@torch.no_grad()
def dataset_retrieval(
    model: ContrastiveModel,
    data: Dataset,
    tokenize: Callable[[list[str]], tuple[Tensor, Tensor]],
    query: str = "image",
    classes: Sequence[str] = (),
    templates: Sequence[str] = ("{}",),
    batch_size: int = 64,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, Any]:
    """Embed a dataset's items and their texts with a contrastive ``model``; Recall@1/5/10 both ways.

    Each item's texts are its ``"captions"`` (COCO ``mode="images"``), else its
    ``"text"``, else its class name in ``templates`` (class-level retrieval).
    Identical strings are one gallery text whose correct items are all items
    carrying it, so every query may have several correct matches both ways.
    Returns ``{"n", "n_texts", "metrics": {"<query>_to_text_R@k", "text_to_<query>_R@k"}}``
    (e.g. ``image_to_text_R@1``, ``audio_to_text_R@1``), for the ``ks`` below each gallery's size.
    """
    device = next(model.parameters()).device
    item_emb: list[Tensor] = []
    text_rows: dict[str, int] = {}
    item_to_texts: list[set[int]] = []
    with evaluating(model):
        for batch in DataLoader(data, batch_size=batch_size, collate_fn=Collate()):
            if query not in batch:
                raise DataError(f"dataset items lack {query!r}; keys: {sorted(batch)}")
            if "captions" in batch:
                captions = batch["captions"]
            elif "text" in batch:
                captions = [[t] for t in batch["text"]]
            elif "label" in batch and classes:
                captions = [[fill_template(t, classes[int(y)]) for t in templates] for y in batch["label"]]
            else:
                raise DataError("dataset items have no 'captions', 'text' or class label to retrieve")
            mask = batch.get(f"{query}_mask")
            item_emb.append(
                model.encode(query, batch[query].to(device), None if mask is None else mask.to(device)).float()
            )
            item_to_texts += [{text_rows.setdefault(c, len(text_rows)) for c in cs} for cs in captions]
        if not item_emb:
            raise DataError("dataset_retrieval: the dataset is empty")
        texts = list(text_rows)
        text_chunks = []
        for s in range(0, len(texts), 256):
            ids, mask = tokenize(texts[s : s + 256])
            text_chunks.append(model.encode("text", ids.to(device), mask.to(device)).float())
        text_emb = torch.cat(text_chunks)
    text_to_items: list[set[int]] = [set() for _ in texts]
    for item, rows in enumerate(item_to_texts):
        for row in rows:
            text_to_items[row].add(item)
    items = torch.cat(item_emb)
    # Recall@k only for k below the gallery size (at or above it every query trivially scores 1).
    to_text = retrieval_metrics(items, text_emb, item_to_texts, [k for k in ks if k < len(texts)] or [1])
    to_items = retrieval_metrics(text_emb, items, text_to_items, [k for k in ks if k < len(items)] or [1])
    metrics = {f"{query}_to_text_{k}": v for k, v in to_text.items()}
    metrics |= {f"text_to_{query}_{k}": v for k, v in to_items.items()}
    return {"n": items.shape[0], "n_texts": len(texts), "metrics": metrics}
