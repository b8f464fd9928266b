"""Tests of chorus.encoders: shapes, masks, padding invariance, exactness against
independent references (naive attention, nn.MultiheadAttention, HF CLIP,
sentence-transformers), freezing, registry errors, autocast, and learning."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chorus.encoders import ENCODERS, build_encoder, encoder_modality, encoder_sizes
from chorus.encoders.transformer import SelfAttention, attention_mask, explicit_attention
from chorus.errors import ConfigError, DataError

SCRATCH = [n for n in ENCODERS.names() if n != "minilm"]  # encoders built from random init
IMAGE_SIZE, N_MELS = 32, 40


def _input(name: str, batch: int = 2, length: int = 9) -> tuple[torch.Tensor, torch.Tensor | None]:
    modality = encoder_modality(name)
    if modality == "image":
        return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE), None
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1:, length - 3 :] = False
    if modality == "text":
        return torch.randint(0, 1000, (batch, length)), mask
    return torch.randn(batch, N_MELS, length), mask


def _data_kwargs(name: str) -> dict:
    kwargs = {"image": {"image_size": IMAGE_SIZE}, "text": {}, "audio": {"n_mels": N_MELS}}
    return kwargs[encoder_modality(name)]


def _expected_tokens(model: nn.Module, name: str, size: str, length: int) -> int:
    """Token count from the architecture's definition (strides), independent of the forward pass."""
    if name in ("cnn", "resnet"):  # every stage after the first halves the resolution
        return (IMAGE_SIZE // 2 ** (len(ENCODERS.get(name).sizes[size]["widths"]) - 1)) ** 2
    if name == "vit":
        return (IMAGE_SIZE // ENCODERS.get(name).sizes[size]["patch_size"]) ** 2
    if name in ("scattering", "scattering_descriptors"):  # subsampled by 2^J, then halved per later head width
        sizes = ENCODERS.get(name).sizes[size]
        return (IMAGE_SIZE // 2 ** sizes["J"] // 2 ** (len(sizes["widths"]) - 1)) ** 2
    if name in ("text_transformer", "bag_of_words"):
        return length
    if name == "audio_cnn":
        return math.ceil(length / math.prod(ENCODERS.get(name).sizes[size]["strides"]))
    return math.ceil(length / 2)  # audio_transformer's default stride-2 subsampling


@pytest.mark.parametrize("name,size", [(n, s) for n in SCRATCH for s in encoder_sizes(n)])
def test_shapes_for_every_name_and_size(name: str, size: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name, size, **_data_kwargs(name)).eval()
    x, mask = _input(name)
    with torch.no_grad():
        out = model(x, mask)
    t = _expected_tokens(model, name, size, x.shape[-1])
    assert out.pooled.shape == (2, model.out_dim)
    assert out.tokens.shape == (2, t, model.out_dim)
    assert out.mask.shape == (2, t) and out.mask.dtype == torch.bool
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()


def test_base_sizes_have_clip_dims() -> None:
    assert build_encoder("vit", "base", image_size=32).out_dim == 512
    assert build_encoder("text_transformer", "base").out_dim == 512


# ---------------------------------------------------------------- masks and padding


def _pad(name: str, x: torch.Tensor, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Append ``extra`` positions of garbage (random ids / large random values) and mask them out."""
    shape = (*x.shape[:-1], extra)
    junk = torch.randint(0, 1000, shape) if x.dtype == torch.long else 50 * torch.randn(shape)
    mask = torch.ones(x.shape[0], x.shape[-1] + extra, dtype=torch.bool)
    mask[:, x.shape[-1] :] = False
    return torch.cat([x, junk], dim=-1), mask


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("text_transformer", {}),
        ("text_transformer", {"causal": False}),
        ("bag_of_words", {}),
        ("audio_cnn", {"n_mels": N_MELS}),
        ("audio_transformer", {"n_mels": N_MELS}),
        ("audio_transformer", {"n_mels": N_MELS, "subsample": 1}),
    ],
)
@pytest.mark.parametrize("length", [10, 13])
def test_padding_does_not_change_outputs(name: str, kwargs: dict, length: int) -> None:
    torch.manual_seed(0)
    model = build_encoder(name, "tiny", **kwargs).train()  # train mode: no BatchNorm statistics may leak
    x, _ = _input(name, batch=1, length=length)
    alone = model(x)
    for extra in (1, 2, 7):
        xp, mask = _pad(name, x, extra)
        padded = model(xp, mask)
        real = padded.mask[0]
        assert int(real.sum()) == alone.tokens.shape[1]
        torch.testing.assert_close(padded.pooled, alone.pooled, atol=1e-5, rtol=0)
        torch.testing.assert_close(padded.tokens[:, real], alone.tokens, atol=1e-5, rtol=0)
    # The test can fail: without the mask the garbage does change the pooled vector.
    assert not torch.allclose(model(xp).pooled, alone.pooled, atol=1e-3)


def test_bag_of_words_is_the_mean_of_its_words_embeddings() -> None:
    """Pooled = mean of the real tokens' embedding rows; position t = mean of tokens 0..t; one word changed
    moves the bag by exactly its embedding difference over the length, so no word can be dropped."""
    torch.manual_seed(0)
    model = build_encoder("bag_of_words", "tiny", vocab_size=50)
    ids = torch.tensor([[3, 7, 7, 12, 0, 0], [4, 9, 1, 2, 5, 8]])
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    out = model(ids, mask)
    table = model.token_embedding.weight
    torch.testing.assert_close(out.pooled[0], table[[3, 7, 7, 12]].mean(0))
    torch.testing.assert_close(out.tokens[1, 2], table[[4, 9, 1]].mean(0))
    torch.testing.assert_close(out.tokens[0, 3], out.pooled[0])
    changed = ids.clone()
    changed[1, 3] = 11
    moved = model(changed, mask).pooled[1] - out.pooled[1]
    torch.testing.assert_close(moved, (table[11] - table[2]) / 6)


def test_padding_invariance_across_a_mixed_length_batch() -> None:
    """Each clip of a batch with different lengths equals the clip encoded alone."""
    torch.manual_seed(0)
    model = build_encoder("audio_transformer", "tiny", n_mels=N_MELS).eval()
    clips = [torch.randn(1, N_MELS, t) for t in (5, 12, 8)]
    batch = torch.full((3, N_MELS, 12), -7.0)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    for i, c in enumerate(clips):
        batch[i, :, : c.shape[-1]] = c[0]
        mask[i, : c.shape[-1]] = True
    out = model(batch, mask)
    for i, c in enumerate(clips):
        torch.testing.assert_close(out.pooled[i], model(c).pooled[0], atol=1e-5, rtol=0)


def test_mask_semantics() -> None:
    torch.manual_seed(0)
    text = build_encoder("text_transformer", "tiny").eval()
    ids = torch.randint(0, 1000, (3, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = text(ids, mask)
    assert torch.equal(out.mask, mask)
    for i, n_real in enumerate((6, 3, 1)):  # pooled = the last real token (CLIP's EOT position)
        torch.testing.assert_close(out.pooled[i], out.tokens[i, n_real - 1])
    assert text(ids).mask.all()  # no input mask: every token is real

    audio = build_encoder("audio_cnn", "small", n_mels=N_MELS)  # strides 1, 2, 2
    frames = torch.zeros(2, 11, dtype=torch.bool)
    frames[0, :11], frames[1, :5] = True, True
    out = audio(torch.randn(2, N_MELS, 11), frames)
    assert out.mask.sum(1).tolist() == [math.ceil(11 / 4), math.ceil(5 / 4)]

    image = build_encoder("vit", "tiny", image_size=IMAGE_SIZE)(torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE))
    assert image.mask.all()


# ---------------------------------------------------------------- attention exactness


def _naive_attention(attn: SelfAttention, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """softmax(QK^T / sqrt(d) with disallowed pairs at -inf) V, head by head, from the raw weights."""
    b, n, d = x.shape
    h = attn.heads
    q, k, v = (x @ attn.in_proj_weight.T + attn.in_proj_bias).split(d, dim=-1)
    split = lambda t: t.view(b, n, h, d // h).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    scores = scores.masked_fill(~keep, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return out @ attn.out_proj.weight.T + attn.out_proj.bias


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_naive_and_multihead_attention(causal: bool) -> None:
    torch.manual_seed(0)
    attn = SelfAttention(width=16, heads=4)
    nn.init.normal_(attn.in_proj_weight, std=0.3)
    nn.init.normal_(attn.in_proj_bias, std=0.3)
    x = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:], mask[2, 2:] = False, False
    keep = mask[:, None, None, :] & (torch.ones(7, 7, dtype=torch.bool).tril() if causal else True)

    ours = attn(x, attention_mask(mask, 7, causal), causal)
    naive = _naive_attention(attn, x, keep)
    torch.testing.assert_close(ours[mask], naive[mask], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(ours).all()  # padded query rows must not be NaN

    # nn.MultiheadAttention (what OpenCLIP uses) accepts our state dict unchanged and agrees.
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    mha.load_state_dict(attn.state_dict(), strict=True)
    future = ~torch.ones(7, 7, dtype=torch.bool).tril() if causal else None  # True = may NOT attend
    ref, _ = mha(x, x, x, key_padding_mask=~mask, attn_mask=future, need_weights=False)
    torch.testing.assert_close(ours[mask], ref[mask], atol=1e-5, rtol=1e-5)

    # Without a mask the fused causal fast path gives the same numbers.
    full = torch.ones(3, 7, dtype=torch.bool)
    masked = attn(x, attention_mask(full, 7, causal), causal)
    torch.testing.assert_close(attn(x, None, causal), masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["none", "causal", "padding", "padding+causal"])
def test_explicit_attention_matches_sdpa_values_and_gradients(case: str) -> None:
    """The CPU-bf16-training path computes exactly what SDPA computes (checked in fp64)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    causal = "causal" in case
    mask = None
    if "padding" in case:
        real = torch.ones(2, 6, dtype=torch.bool)
        real[1, 3:] = False
        mask = attention_mask(real, 6, causal)
    ours = explicit_attention(q, k, v, mask, causal)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-10)


def test_bf16_training_attention_close_to_fp32() -> None:
    """Under CPU bf16 autocast with gradients on, SelfAttention takes the explicit path; it must stay accurate."""
    torch.manual_seed(0)
    attn = SelfAttention(width=32, heads=4)
    nn.init.normal_(attn.in_proj_weight, std=0.2)
    x = torch.randn(4, 9, 32)
    real = torch.ones(4, 9, dtype=torch.bool)
    real[2, 5:] = False
    mask = attention_mask(real, 9, causal=True)
    ref = attn(x, mask, True)
    ref_grad = torch.autograd.grad(ref[real].sum(), attn.in_proj_weight)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attn(x, mask, True)
    low_grad = torch.autograd.grad(low[real].float().sum(), attn.in_proj_weight)[0]
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert (F.cosine_similarity(low[real].float(), ref[real], dim=-1) > 0.99).all()
    assert F.cosine_similarity(low_grad.flatten(), ref_grad.flatten(), dim=0) > 0.99


# ---------------------------------------------------------------- CLIP exactness (HF CLIP as reference)


def _hf_blocks_to_ours(sd: dict, prefix: str) -> dict:
    out = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix) :]
        for hf_name, name in [
            ("layer_norm1", "ln_1"),
            ("layer_norm2", "ln_2"),
            ("self_attn.out_proj", "attn.out_proj"),
            ("mlp.fc1", "mlp.c_fc"),
            ("mlp.fc2", "mlp.c_proj"),
        ]:
            k = k.replace(hf_name, name)
        out["transformer.resblocks." + k] = value
    for key in [k for k in out if ".self_attn.q_proj." in k]:
        kind = key.rsplit(".", 1)[1]
        block = key.split(".self_attn.")[0]
        parts = [out.pop(f"{block}.self_attn.{p}_proj.{kind}") for p in "qkv"]
        out[f"{block}.attn.in_proj_{kind}"] = torch.cat(parts)
    return out


def test_vit_reproduces_hf_clip_vision_tower() -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=16,
        patch_size=4,
        projection_dim=24,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-6,
    )
    hf = CLIPVisionModelWithProjection(cfg).eval()
    sd = hf.state_dict()
    ours = build_encoder(
        "vit",
        "tiny",
        patch_size=4,
        width=32,
        layers=2,
        heads=4,
        image_size=16,
        mlp_ratio=2.5,
        act="quick_gelu",
        output_dim=24,
        ln_eps=1e-6,
    ).eval()
    p = "vision_model."
    mapped = {
        "conv1.weight": sd[p + "embeddings.patch_embedding.weight"],
        "class_embedding": sd[p + "embeddings.class_embedding"],
        "positional_embedding": sd[p + "embeddings.position_embedding.weight"],
        "ln_pre.weight": sd[p + "pre_layrnorm.weight"],
        "ln_pre.bias": sd[p + "pre_layrnorm.bias"],
        "ln_post.weight": sd[p + "post_layernorm.weight"],
        "ln_post.bias": sd[p + "post_layernorm.bias"],
        "proj": sd["visual_projection.weight"].T,
        **_hf_blocks_to_ours(sd, p + "encoder.layers."),
    }
    ours.load_state_dict(mapped, strict=True)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ref = hf(pixel_values=x)
        out = ours(x)
        ref_tokens = hf.visual_projection(hf.vision_model.post_layernorm(ref.last_hidden_state[:, 1:]))
    torch.testing.assert_close(out.pooled, ref.image_embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.tokens, ref_tokens, atol=1e-5, rtol=1e-5)


def test_text_transformer_reproduces_hf_clip_text_tower() -> None:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    vocab, ctx = 100, 12
    cfg = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=ctx,
        projection_dim=24,
        hidden_act="gelu",
        eos_token_id=vocab - 1,
        pad_token_id=0,
        bos_token_id=vocab - 2,
    )
    hf = CLIPTextModelWithProjection(cfg).eval()
    sd = hf.state_dict()
    ours = build_encoder(
        "text_transformer", "tiny", width=32, layers=2, heads=4, vocab_size=vocab, context_length=ctx, output_dim=24
    ).eval()
    p = "text_model."
    mapped = {
        "token_embedding.weight": sd[p + "embeddings.token_embedding.weight"],
        "positional_embedding": sd[p + "embeddings.position_embedding.weight"],
        "ln_final.weight": sd[p + "final_layer_norm.weight"],
        "ln_final.bias": sd[p + "final_layer_norm.bias"],
        "proj": sd["text_projection.weight"].T,
        **_hf_blocks_to_ours(sd, p + "encoder.layers."),
    }
    ours.load_state_dict(mapped, strict=True)
    lengths = [12, 7, 3]  # BOS, words, EOS, then padding id 0
    ids = torch.zeros(3, ctx, dtype=torch.long)
    mask = torch.zeros(3, ctx, dtype=torch.bool)
    for i, n in enumerate(lengths):
        words = torch.randint(1, vocab - 2, (n - 2,))
        ids[i, :n] = torch.cat([torch.tensor([vocab - 2]), words, torch.tensor([vocab - 1])])
        mask[i, :n] = True
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask.long())
        out = ours(ids, mask)
        ref_tokens = hf.text_projection(ref.last_hidden_state)
    torch.testing.assert_close(out.pooled, ref.text_embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.tokens[mask], ref_tokens[mask], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm() -> nn.Module:
    return build_encoder("minilm")


def _captions(real_data_root: Path, n: int) -> list[str]:
    with open(real_data_root / "coco_captions_mini" / "captions.csv", newline="") as f:
        return [row["caption"] for _, row in zip(range(n), csv.DictReader(f))]


def test_minilm_matches_sentence_transformers(minilm: nn.Module, real_data_root: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    sentences = [*_captions(real_data_root, 4), "A dog.", "Two people ride bicycles along a wet street at night."]
    tok = Tokenizer.from_file(str(minilm.tokenizer_path))
    tok.enable_padding(pad_id=0)
    enc = tok.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.bool)
    assert not mask.all()  # the sentences differ in length, so padding is exercised

    out = minilm(ids, mask)
    reference = SentenceTransformer(str(minilm.tokenizer_path.parent), device="cpu")
    ref = reference.encode(sentences, convert_to_tensor=True)
    assert out.pooled.shape == (len(sentences), 384) == (len(sentences), minilm.out_dim)
    torch.testing.assert_close(F.normalize(out.pooled, dim=-1), ref.cpu(), atol=1e-5, rtol=0)
    norms = out.pooled.norm(dim=-1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)  # pooled is not normalised
    assert torch.equal(out.mask, mask) and out.tokens.shape == (*ids.shape, 384)


def test_minilm_frozen_and_tunable(minilm: nn.Module) -> None:
    ids = torch.tensor([[101, 1037, 3899, 1012, 102]])
    parent = nn.Sequential(minilm).train()
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.parameters())
    head = nn.Linear(384, 1)
    head(minilm(ids).pooled).sum().backward()
    assert head.weight.grad is not None and all(p.grad is None for p in minilm.parameters())
    assert parent.train() is parent and not minilm.model.training

    tunable = build_encoder("minilm", frozen=False).train()
    assert tunable.model.training and all(p.requires_grad for p in tunable.parameters())
    tunable(ids).pooled.sum().backward()
    assert tunable.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- registry and input errors


def test_registry_and_build_errors() -> None:
    assert {n: encoder_modality(n) for n in ENCODERS.names()} == {
        "cnn": "image",
        "resnet": "image",
        "vit": "image",
        "scattering": "image",
        "scattering_descriptors": "image",
        "text_transformer": "text",
        "bag_of_words": "text",
        "minilm": "text",
        "audio_cnn": "audio",
        "audio_transformer": "audio",
    }
    with pytest.raises(ConfigError, match="'nope'.*audio_cnn.*vit"):
        build_encoder("nope")
    with pytest.raises(ConfigError, match="'huge'.*tiny, small, base"):
        build_encoder("cnn", "huge")
    with pytest.raises(ConfigError, match="'widht'"):
        build_encoder("cnn", "tiny", widht=3)
    with pytest.raises(ConfigError, match="divisible"):
        build_encoder("vit", "tiny", image_size=30)
    assert build_encoder("cnn", "tiny", widths=(8, 12)).out_dim == 12  # overrides replace size defaults


def test_bad_inputs_raise_data_errors() -> None:
    vit = build_encoder("vit", "tiny", image_size=IMAGE_SIZE)
    with pytest.raises(DataError, match=r"\[B, 3, 32, 32\].*\(2, 1, 32, 32\)"):
        vit(torch.randn(2, 1, 32, 32))
    text = build_encoder("text_transformer", "tiny", vocab_size=50, context_length=8)
    with pytest.raises(DataError, match="maximum length 8"):
        text(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 50\)"):
        text(torch.full((1, 4), 50))
    with pytest.raises(DataError, match="integer"):
        text(torch.zeros(1, 4))
    with pytest.raises(DataError, match="mask shape"):
        text(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 5, dtype=torch.bool))
    audio = build_encoder("audio_cnn", "tiny", n_mels=N_MELS)
    with pytest.raises(DataError, match="log-mel"):
        audio(torch.randn(2, N_MELS + 1, 10))
    with pytest.raises(DataError, match="bool"):
        audio(torch.randn(2, N_MELS, 10), torch.ones(2, 10))


# ---------------------------------------------------------------- precision, layout, gradients


@pytest.mark.parametrize("name", SCRATCH)
def test_bf16_autocast_close_to_fp32(name: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name, "tiny", **_data_kwargs(name)).eval()
    x, mask = _input(name)
    with torch.no_grad():
        ref = model(x, mask).pooled
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, mask).pooled
    assert torch.isfinite(low).all()
    cos = F.cosine_similarity(low.float(), ref, dim=-1)
    assert (cos > 0.99).all(), cos  # bf16 keeps ~3 significant digits


@pytest.mark.parametrize("name", ["cnn", "resnet", "vit"])
def test_channels_last_gives_same_output(name: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name, "tiny", image_size=IMAGE_SIZE).eval()
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.tokens, ref.tokens, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", SCRATCH)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name, "tiny", **_data_kwargs(name)).train()
    for m in model.modules():  # resnet zero-inits each block's last BN, which blocks step-0 grads by design
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    x, mask = _input(name)
    out = model(x, mask)
    (out.pooled.square().sum() + out.tokens.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


# ---------------------------------------------------------------- learning sanity on real MNIST


def _mnist(root: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    folder = root / "mnist_test"
    images_file = next(folder.glob("*images*"))
    labels_file = next(folder.glob("*labels*"))
    images = np.frombuffer(gzip.open(images_file).read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    labels = np.frombuffer(gzip.open(labels_file).read(), np.uint8, offset=8)[:n]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - 0.1307) / 0.3081, torch.from_numpy(labels.astype(np.int64))


def test_cnn_fits_a_batch_of_real_mnist(real_data_root: Path) -> None:
    torch.manual_seed(0)
    x, y = _mnist(real_data_root, 64)
    assert len(set(y.tolist())) == 10
    encoder = build_encoder("cnn", "tiny", in_channels=1, image_size=28)
    head = nn.Linear(encoder.out_dim, 10)
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(head(encoder(x).pooled), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(10)) < 0.5  # starts near chance (ln 10 = 2.30)
    assert losses[-1] < 0.2 * losses[0]
    encoder.eval()
    with torch.no_grad():
        acc = (head(encoder(x).pooled).argmax(-1) == y).float().mean().item()
    assert acc > 0.9  # chance is 0.1


def test_attention_window_limits_what_each_position_sees() -> None:
    """One layer with ``window`` w: output i ignores inputs farther than w away and reads those within; a window
    covering the whole sequence is global attention; padding still never leaks in."""
    from chorus.encoders.transformer import Transformer

    torch.manual_seed(0)
    glob = Transformer(16, 1, 2).eval()
    local = Transformer(16, 1, 2, window=2).eval()
    local.load_state_dict(glob.state_dict())
    x = torch.randn(1, 9, 16)
    far, near = x.clone(), x.clone()
    far[0, 7] += 3 * torch.randn(16)  # 3 away from position 4 (not a constant: LayerNorm would remove it)
    near[0, 6] += 3 * torch.randn(16)  # 2 away
    with torch.no_grad():
        base = local(x)
        torch.testing.assert_close(local(far)[0, 4], base[0, 4])
        assert not torch.allclose(local(near)[0, 4], base[0, 4], atol=1e-4)
        assert not torch.allclose(glob(far)[0, 4], glob(x)[0, 4], atol=1e-4)  # the test can fail: global sees it
        whole = Transformer(16, 1, 2, window=8).eval()
        whole.load_state_dict(glob.state_dict())
        torch.testing.assert_close(whole(x), glob(x))
        mask = torch.ones(1, 9, dtype=torch.bool)
        mask[0, 6:] = False
        torch.testing.assert_close(local(far, mask)[0, :6], local(x[:, :6])[0])
