"""Recall@K vs a brute-force numpy reference, tie handling, and memory-bounded blocks at scale."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from chorus.contrastive import image_text_retrieval, retrieval_metrics
from chorus.errors import DataError


def brute_force(queries: np.ndarray, gallery: np.ndarray, positives: list[set[int]], ks) -> dict[str, float]:
    scores = queries @ gallery.T
    hits = {k: [] for k in ks}
    for i, pos in enumerate(positives):
        best = max(scores[i, j] for j in pos)
        negatives = np.delete(scores[i], sorted(pos))
        rank = int((negatives >= best).sum())  # ties count against the query
        for k in ks:
            hits[k].append(rank < k)
    return {f"R@{k}": float(np.mean(h)) for k, h in hits.items()}


def random_case(nq: int, ng: int, d: int, max_pos: int, seed: int):
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((nq, d))
    gallery = rng.standard_normal((ng, d))
    positives = [set(rng.choice(ng, size=rng.integers(1, max_pos + 1), replace=False).tolist()) for _ in range(nq)]
    # make some positives genuinely close so recall is neither 0 nor 1
    for i, pos in enumerate(positives[: nq // 2]):
        queries[i] = gallery[min(pos)] + 0.8 * rng.standard_normal(d)
    return queries, gallery, positives


@pytest.mark.parametrize("chunk_size", [7, 64, 4096])
def test_matches_brute_force_with_multiple_positives(chunk_size: int) -> None:
    q, g, pos = random_case(53, 71, 6, max_pos=4, seed=0)
    ks = (1, 3, 5, 10)
    got = retrieval_metrics(torch.from_numpy(q), torch.from_numpy(g), pos, ks=ks, chunk_size=chunk_size)
    expected = brute_force(q, g, pos, ks)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got["R@1"] < got["R@10"] < 1  # the case is not degenerate


def test_tensor_positive_formats_agree_with_sets() -> None:
    q, g, _ = random_case(40, 30, 5, max_pos=1, seed=1)
    rng = np.random.default_rng(1)
    single = rng.integers(0, 30, size=40)
    padded = np.full((40, 3), -1)
    padded[:, 0] = single
    padded[::2, 1] = (single[::2] + 1) % 30
    sets = [{int(a)} | ({int(b)} if b >= 0 else set()) for a, b in zip(padded[:, 0], padded[:, 1])]
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    assert retrieval_metrics(qt, gt, torch.from_numpy(single), chunk_size=8) == pytest.approx(
        brute_force(q, g, [{int(s)} for s in single], (1, 5, 10))
    )
    assert retrieval_metrics(qt, gt, torch.from_numpy(padded), chunk_size=8) == pytest.approx(
        brute_force(q, g, sets, (1, 5, 10))
    )


def test_ties_count_against_the_query() -> None:
    gallery = torch.ones(20, 4)
    queries = torch.ones(3, 4)
    collapsed = retrieval_metrics(queries, gallery, [{0}, {1}, {2}], ks=(1, 10, 20))
    assert collapsed == {"R@1": 0.0, "R@10": 0.0, "R@20": 1.0}  # k ≥ gallery size always hits
    # an exact duplicate of the positive, as a negative, pushes it to rank 2
    g = torch.eye(4)
    g = torch.cat([g, g[:1]])
    assert retrieval_metrics(g[:1], g, [{0}], ks=(1, 2)) == {"R@1": 0.0, "R@2": 1.0}


def test_image_text_retrieval_both_directions() -> None:
    rng = np.random.default_rng(3)
    n_images, per_image, d = 23, 5, 8
    images = rng.standard_normal((n_images, d))
    text_to_image = np.repeat(np.arange(n_images), per_image)
    texts = images[text_to_image] + 1.5 * rng.standard_normal((n_images * per_image, d))
    got = image_text_retrieval(
        torch.from_numpy(images), torch.from_numpy(texts), torch.from_numpy(text_to_image), chunk_size=16
    )
    i2t = brute_force(images, texts, [set(np.flatnonzero(text_to_image == i)) for i in range(n_images)], (1, 5, 10))
    t2i = brute_force(texts, images, [{int(i)} for i in text_to_image], (1, 5, 10))
    assert got == pytest.approx(
        {f"image_to_text_{k}": v for k, v in i2t.items()} | {f"text_to_image_{k}": v for k, v in t2i.items()}
    )
    assert got["image_to_text_R@1"] > got["text_to_image_R@1"]  # five chances per image vs one


def test_bad_positives_are_data_errors() -> None:
    q, g = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(DataError, match="no positive"):
        retrieval_metrics(q, g, [{0}, set(), {1}])
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        retrieval_metrics(q, g, [{0}, {5}, {1}])
    with pytest.raises(DataError, match="one entry per query"):
        retrieval_metrics(q, g, torch.tensor([0, 1]))
    with pytest.raises(DataError, match="text_to_image"):
        image_text_retrieval(q, g, torch.tensor([0, 1, 2, 3, 7]))


LARGE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    from chorus.contrastive import retrieval_metrics
    n, n_wrong, device = int(sys.argv[1]), 300, sys.argv[2]
    torch.manual_seed(0)
    gallery = torch.nn.functional.normalize(torch.randn(n, 32), dim=1)
    perm = torch.randperm(n)
    queries = gallery[perm].clone()  # each query is an exact copy of its true match
    positives = perm.clone()
    positives[:n_wrong] = (perm[:n_wrong] + 1 + torch.randint(0, n - 1, (n_wrong,))) % n  # wrong labels
    scores = queries[:n_wrong].double().numpy() @ gallery.double().numpy().T
    positives[:100] = torch.from_numpy(np.argsort(-scores[:100], axis=1)[:, 3])  # 4th nearest: rank 3
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    got = retrieval_metrics(queries.to(device), gallery.to(device), positives.to(device), chunk_size=2048)
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
               else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    # reference for the mislabelled queries: rank of the labelled item among all others, brute force
    target = scores[np.arange(n_wrong), positives[:n_wrong].numpy()]
    ranks = (scores >= target[:, None]).sum(1) - 1
    expected = {f"R@{k}": float((n - n_wrong + (ranks < k).sum()) / n) for k in (1, 5, 10)}
    print(json.dumps({"got": got, "expected": expected, "peak_mb": peak_mb}))
    """
)


def run_large(n: int, device: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", LARGE, str(n), device], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_large_gallery_in_bounded_memory_cpu() -> None:
    # 30k × 30k: the full float32 score matrix would need 3.4 GiB; blocks of 2048² need 16 MiB
    result = run_large(30_000, "cpu")
    assert result["got"] == pytest.approx(result["expected"], abs=1e-9)
    assert result["got"]["R@1"] == pytest.approx(1 - 300 / 30_000)  # mislabelled ones lose to their copy
    assert result["got"]["R@5"] >= 1 - 200 / 30_000  # 100 of them are labelled with their 4th neighbour
    assert result["peak_mb"] < 400


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: 100k × 100k is 10^10 scores")
def test_large_gallery_in_bounded_memory_gpu() -> None:
    # 100k × 100k: the full score matrix would need 37 GiB
    result = run_large(100_000, "cuda")
    assert result["got"] == pytest.approx(result["expected"], abs=1e-9)
    assert result["peak_mb"] < 1024
