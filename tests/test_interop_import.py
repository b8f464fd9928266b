"""``chorus import``: a CLIP checkpoint saved by ``transformers`` becomes a run that predicts exactly as it does.

The checkpoint (``clip_checkpoint.make_hf_clip``) is a tiny random ``CLIPModel``
with a real CLIP BPE trained on COCO captions; the images are real
(Caltech-101 photos, square, and COCO photos of other shapes, which exercise
the resize arithmetic). Reference: ``CLIPModel`` + ``CLIPProcessor`` loaded
from the same files. Chorus must give the same pixels, token ids, image and
text embeddings and zero-shot probabilities (≤ 1e-4), through the run folder
alone. The OpenCLIP layout is checked by a bit-exact round trip through
``export_open_clip``, and against open_clip itself where its environment exists.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from clip_checkpoint import make_hf_clip
from PIL import Image
from safetensors.torch import load_file
from test_interop import FIXTURES, OPEN_CLIP_PYTHON

from chorus.cli import main
from chorus.contrastive.interop import export_open_clip
from chorus.data.text import ClipTokenizer
from chorus.errors import ConfigError
from chorus.experiment import build_eval_dataset, load_experiment, load_run
from chorus.run_eval import zeroshot_files, zeroshot_run
from chorus.run_import import import_clip
from chorus.serve.runs import LoadedRun

CLASSES = ["airplanes", "motorbikes", "faces", "leopards", "watch", "ketch", "chandelier", "grand piano"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, real_data_root: Path) -> Path:
    return make_hf_clip(real_data_root, tmp_path_factory.mktemp("download") / "tiny-clip")


@pytest.fixture(scope="module")
def run_dir(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny-clip"
    import_clip(checkpoint, run)
    return run


@pytest.fixture(scope="module")
def images(real_data_root: Path) -> dict[str, Image.Image]:
    """Two Caltech-101 photos of each of four classes plus six COCO photos of other shapes."""
    with open(real_data_root / "caltech101" / "metadata.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["class_name"] in CLASSES[:4]]
    paths = [real_data_root / "caltech101" / r["path"] for r in rows[::15]]
    paths += sorted((real_data_root / "coco_captions_mini" / "images").glob("*.jpg"))[:6]
    loaded = {str(p): Image.open(p).convert("RGB") for p in paths}
    margins = {int(32 * max(im.size) / min(im.size)) - 32 for im in loaded.values()}
    assert 0 in margins and any(m % 2 for m in margins)  # square, and a crop that floor and round place apart
    return loaded


@pytest.fixture(scope="module")
def reference(checkpoint: Path, images: dict[str, Image.Image]) -> dict[str, torch.Tensor]:
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(checkpoint)
    model = CLIPModel.from_pretrained(checkpoint).eval()
    inputs = processor(
        text=[f"a photo of a {c}." for c in CLASSES],
        images=list(images.values()),
        return_tensors="pt",
        padding="max_length",
        max_length=77,
        truncation=True,
    )
    with torch.no_grad():
        out = model(**inputs)
    return {
        "pixels": inputs["pixel_values"],
        "ids": inputs["input_ids"],
        "mask": inputs["attention_mask"].bool(),
        "image": out.image_embeds,
        "text": out.text_embeds,
        "probs": out.logits_per_image.softmax(-1),
    }


def test_imported_run_equals_transformers(
    run_dir: Path,
    images: dict[str, Image.Image],
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(run_dir, tmp_path / "moved")  # the folder alone suffices: no dataset, no checkpoint
    monkeypatch.setenv("CHORUS_DATA", str(tmp_path / "no-datasets-here"))
    run = LoadedRun(tmp_path / "moved", device="cpu")
    assert run.cfg.data.name is None and run.cfg.data.tokenizer == "clip"
    pixels = torch.cat([run.features("image", img)["image"] for img in images.values()])
    torch.testing.assert_close(pixels, reference["pixels"], atol=1e-5, rtol=0)
    ids, mask = run.tokenizer([f"a photo of a {c}." for c in CLASSES], run.cfg.data.context_length)
    assert torch.equal(mask, reference["mask"]) and torch.equal(ids[mask], reference["ids"][mask])
    image = torch.stack([run.embed("image", img) for img in images.values()])
    text = torch.stack([run.embed("text", f"a photo of a {c}.") for c in CLASSES])
    torch.testing.assert_close(image, reference["image"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(text, reference["text"], atol=TOLERANCE, rtol=0)
    for row, img in enumerate(images.values()):
        probs = dict(run.classify("image", img, CLASSES))
        torch.testing.assert_close(
            torch.tensor([probs[c] for c in CLASSES]), reference["probs"][row], atol=TOLERANCE, rtol=0
        )
    assert reference["probs"].std() > 1e-3  # the random model still tells classes apart, so equality means something


def test_imported_run_serves_without_datasets(
    run_dir: Path,
    images: dict[str, Image.Image],
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    from chorus.serve import create_app

    shutil.copytree(run_dir, tmp_path / "clip")
    monkeypatch.setenv("CHORUS_DATA", str(tmp_path / "no-datasets-here"))
    path = next(iter(images))
    with TestClient(create_app(tmp_path / "clip", device="cpu")) as client:
        (described,) = client.get("/runs").json()["runs"]
        assert described["name"] == "clip" and described["zero_shot"] == ["image"]
        with open(path, "rb") as f:
            answer = client.post(
                "/zeroshot", files={"image": ("photo.jpg", f, "image/jpeg")}, data={"classes": ",".join(CLASSES)}
            )
    assert answer.status_code == 200, answer.text
    scores = {label["label"]: label["score"] for label in answer.json()["labels"]}
    torch.testing.assert_close(
        torch.tensor([scores[c] for c in CLASSES]), reference["probs"][0], atol=TOLERANCE, rtol=0
    )


def test_zeroshot_cli_on_files_with_user_labels(
    checkpoint: Path,
    images: dict[str, Image.Image],
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One command from a downloaded checkpoint (imported on the fly) to probabilities over the user's labels."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, path in enumerate(images):
        shutil.copy(path, folder / f"{i:02d}{Path(path).suffix}")
    assert (
        main(
            [
                "zeroshot",
                str(checkpoint),
                "--images",
                str(folder),
                "--classes",
                ",".join(CLASSES),
                "--top-k",
                str(len(CLASSES)),
                "--json",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == sorted(p.name for p in folder.iterdir())
    for row, expected in zip(rows, reference["probs"]):
        got = dict(zip(row["classes"], row["probs"]))
        torch.testing.assert_close(torch.tensor([got[c] for c in CLASSES]), expected, atol=TOLERANCE, rtol=0)
    assert main(["zeroshot", str(checkpoint), "--images", str(folder)]) == 2  # labels are required


def open_clip_bpe(checkpoint: Path, out: Path) -> Path:
    """The checkpoint's merges in OpenCLIP's tokenizer file format (gzip; no trailing newline, which open_clip
    would read as one more, empty, merge)."""
    merges = (checkpoint.parent / f"{checkpoint.name}-bpe" / "merges.txt").read_bytes()
    out.write_bytes(gzip.compress(merges.rstrip(b"\n")))
    return out


@pytest.fixture(scope="module")
def open_clip_run(run_dir: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The imported model exported in OpenCLIP's layout and imported back with OpenCLIP's tokenizer file."""
    folder = tmp_path_factory.mktemp("open_clip")
    _, model, _, _ = load_run(run_dir)
    export_open_clip(model, folder / "oc")
    summary = import_clip(folder / "oc", folder / "run", tokenizer=open_clip_bpe(checkpoint, folder / "bpe.txt.gz"))
    assert summary["format"] == "open_clip"
    return folder


def test_open_clip_layout_round_trips_exactly(
    run_dir: Path, open_clip_run: Path, reference: dict[str, torch.Tensor]
) -> None:
    """Same tensors, same architecture and statistics, same token ids; only the crop placement is OpenCLIP's."""
    original, back = load_file(run_dir / "model.safetensors"), load_file(open_clip_run / "run" / "model.safetensors")
    assert sorted(original) == sorted(back) and all(torch.equal(original[k], back[k]) for k in original)
    a, b = load_experiment(run_dir / "experiment.yaml"), load_experiment(open_clip_run / "run" / "experiment.yaml")
    assert a.model == b.model and (a.data.image_mean, a.data.image_size) == (b.data.image_mean, b.data.image_size)
    assert (a.data.image_crop_offset, b.data.image_crop_offset) == ("floor", "round")
    tok = ClipTokenizer.load(open_clip_run / "run")
    ids, mask = tok([f"a photo of a {c}." for c in CLASSES], 77)
    assert torch.equal(ids[mask], reference["ids"][reference["mask"]])


@pytest.mark.skipif(
    not OPEN_CLIP_PYTHON, reason="set CHORUS_OPENCLIP_PYTHON to a Python that has open_clip (it needs torchvision)"
)
def test_open_clip_run_equals_open_clip(open_clip_run: Path, images: dict[str, Image.Image], tmp_path: Path) -> None:
    """open_clip itself (its preprocessing, tokenizer and model) on the same files gives Chorus' numbers."""
    prompts = [f"a photo of a {c}." for c in CLASSES]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    result = subprocess.run(
        [
            str(OPEN_CLIP_PYTHON),
            str(FIXTURES / "open_clip_zeroshot.py"),
            str(open_clip_run / "oc"),
            str(open_clip_run / "bpe.txt.gz"),
            str(tmp_path / "ref.safetensors"),
            str(tmp_path / "prompts.json"),
            *images,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ref = load_file(tmp_path / "ref.safetensors")
    run = LoadedRun(open_clip_run / "run", device="cpu")
    image = torch.stack([run.embed("image", img) for img in images.values()])
    text = torch.stack([run.embed("text", p) for p in prompts])
    probs = torch.stack(
        [torch.tensor([dict(run.classify("image", img, CLASSES))[c] for c in CLASSES]) for img in images.values()]
    )
    for name, ours in (("image", image), ("text", text), ("probs", probs)):
        torch.testing.assert_close(ours, ref[name], atol=TOLERANCE, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_import_refuses_a_foreign_tokenizer(checkpoint: Path, tmp_path: Path) -> None:
    vocab = json.loads((checkpoint.parent / f"{checkpoint.name}-bpe" / "vocab.json").read_text())
    swapped = {
        t: (len(vocab) - 2 if t == "<|endoftext|>" else len(vocab) - 1 if t == "<|startoftext|>" else i)
        for t, i in vocab.items()
    }
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.json").write_text(json.dumps(swapped))
    shutil.copy(checkpoint.parent / f"{checkpoint.name}-bpe" / "merges.txt", tmp_path / "tok")
    with pytest.raises(ConfigError, match="end-of-text id .* is not the checkpoint's"):
        import_clip(checkpoint, tmp_path / "run", tokenizer=tmp_path / "tok")
    assert main(["import", str(tmp_path / "nowhere"), str(tmp_path / "run")]) == 2


def test_lit_fine_tuning_starts_from_the_imported_run(run_dir: Path, real_data_root: Path, tmp_path: Path) -> None:
    """``model.init_from`` + ``frozen: [text]``: the text tower stays bit-identical, the image side learns."""
    config = tmp_path / "lit.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "lit",
                "data": {
                    "name": "caltech101",
                    "train_split": "train",
                    "eval_split": "test",
                    "caption_templates": ["a photo of a {}."],
                    "options": {"indices": list(range(32))},
                    "eval_options": {"indices": list(range(40))},
                },
                "model": {
                    "task": "contrastive",
                    "init_from": str(run_dir),
                    "frozen": ["text"],
                    "zero_shot_templates": ["a photo of a {}."],
                },
                "train": {"max_steps": 3, "batch_size": 16, "lr": 1e-3, "progress": False, "tensorboard": False},
            }
        )
    )
    assert main(["train", str(config), "--run-dir", str(tmp_path / "lit"), "--json"]) == 0
    before, after = load_file(run_dir / "model.safetensors"), load_file(tmp_path / "lit" / "model.safetensors")
    assert sorted(before) == sorted(after)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoders.text."))
    assert not torch.equal(before["projections.image.weight"], after["projections.image.weight"])
    cfg = load_experiment(tmp_path / "lit" / "experiment.yaml")
    assert cfg.model.encoders == load_experiment(run_dir / "experiment.yaml").model.encoders
    assert (tmp_path / "lit" / "tokenizer.json").is_file() and cfg.data.tokenizer == "clip"
    cfg, _, classes, _ = load_run(tmp_path / "lit")
    assert len(classes) == 101 and len(build_eval_dataset(cfg, str(real_data_root))) > 0


def test_zeroshot_needs_one_name_per_class(run_dir: Path, real_data_root: Path) -> None:
    with pytest.raises(ConfigError, match="stores no class names"):
        zeroshot_files(run_dir, [], classes=[])
    with pytest.raises(ConfigError, match="2 class names given, dataset 'caltech101' has 101"):
        zeroshot_run(run_dir, "caltech101", classes=["cat", "dog"], data_root=str(real_data_root))


def test_import_reads_pytorch_model_bin(checkpoint: Path, run_dir: Path, tmp_path: Path) -> None:
    """Older ``save_pretrained`` directories hold ``pytorch_model.bin``; the imported weights are the same."""
    older = tmp_path / "older"
    shutil.copytree(checkpoint, older)
    torch.save(load_file(older / "model.safetensors"), older / "pytorch_model.bin")
    (older / "model.safetensors").unlink()
    import_clip(older, tmp_path / "run")
    original, back = load_file(run_dir / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert sorted(original) == sorted(back) and all(torch.equal(original[k], back[k]) for k in original)


def test_docs_example_runs_as_written(
    checkpoint: Path,
    images: dict[str, Image.Image],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/interop.md's one command and five lines of Python, on a checkpoint and photos named as the page names them."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    command = re.search(r"```bash\n(chorus .*?)\n```", doc).group(1)
    code = re.search(r"```python\n(.*?)```", doc, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(checkpoint, "clip-vit-base-patch32")
    Path("my_photos").mkdir()
    for i, path in enumerate(list(images)[:3]):
        shutil.copy(path, Path("my_photos") / f"{i}-{Path(path).name}")
    assert main(shlex.split(command)[1:]) == 0
    from_cli = capsys.readouterr().out.splitlines()
    exec(compile(code, "docs/interop.md", "exec"), {})  # noqa: S102 - the page's code, run as a reader would
    from_python = capsys.readouterr().out.splitlines()
    assert len(from_cli) == len(from_python) == 3
    for cli_line, py_line in zip(from_cli, from_python):
        path, label, prob = py_line.split()
        assert cli_line.startswith(f"{path} {label} ") and label in ("cat", "dog", "bicycle") and 0 < float(prob) < 1
