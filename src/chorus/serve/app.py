"""The ``chorus serve`` web app: a FastAPI JSON API over trained runs and search indexes, plus one page.

Endpoints (the OpenAPI spec is served at ``/openapi.json``, browsable at ``/docs``):

- ``POST /embed``    one image, audio clip or text → its unit-norm vector;
- ``POST /zeroshot`` an image or audio clip + class names → labels ranked by probability;
- ``POST /search``   a query in any modality of an index's run → the top-k items, with preview URLs;
- ``POST /align``    two recordings → DTW path, distance and a picture;
- ``POST /speak``    a digit string as words → WAV speech from a text-to-speech run (``chorus train speech_tts``);
- ``POST /ask``      an image + a question → answers ranked by probability (runs of task ``vqa``);
- ``POST /caption``  one image → a caption from a captioner run (``captioner.json`` folders);
- ``GET /runs``, ``GET /health``, ``GET /media/{index}/{item}`` (previews), ``GET /`` (the page).

Why this shape: runs and indexes are loaded once, in :func:`create_app`, and
requests only read them (see :mod:`chorus.serve.runs`), so the app can be
served by one process with a thread pool and concurrent requests stay
correct. Handlers are plain ``def`` functions: FastAPI runs them in its
thread pool, where PyTorch and FAISS release the GIL during compute. All
untrusted bytes go through :mod:`chorus.serve.uploads`; every user mistake
becomes a 4xx JSON ``{"detail": "..."}`` naming the field at fault, and
request data is never turned into a file path (runs, indexes, previews and
page assets are looked up by name or number in tables built at start-up).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import soundfile as sf
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from chorus.data.sequences import text_to_digits
from chorus.errors import ChorusError, ConfigError, DataError
from chorus.serve.alignment import align_audio
from chorus.serve.index import SearchIndex
from chorus.serve.runs import LoadedRun
from chorus.serve.uploads import BadInput, BodyLimit, Limits, read_audio, read_classes, read_image, read_text
from chorus.translate.caption_run import SPEC as CAPTIONER
from chorus.translate.caption_run import LoadedCaptioner
from chorus.translate.speech_runs import SAMPLE_RATE, is_speech_config, load_speech_run, synthesize_wave
from chorus.translate.synthesizer import DigitSynthesizer

MAX_SPOKEN_DIGITS = 20  # a longer string is not a digit string (and costs Griffin-Lim time)
log = logging.getLogger(__name__)

MAX_ALIGN_SECONDS = 10.0  # DTW is quadratic in length: 10 s is 1000 × 1000 frames
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


# ---------------------------------------------------------------------------- response schemas


class Embedding(BaseModel):
    run: str
    modality: str
    dim: int
    vector: list[float]


class Label(BaseModel):
    label: str
    score: float


class Prediction(BaseModel):
    run: str
    modality: str
    labels: list[Label]


class VQAAnswer(BaseModel):
    run: str
    question: str
    answer: str
    answers: list[Label]
    attention: list[float] | None = None


class Hit(BaseModel):
    rank: int
    item: int
    score: float
    label: str | None = None
    text: str | None = None
    media_url: str | None = None
    media_type: str | None = None


class SearchResult(BaseModel):
    index: str
    run: str
    query_modality: str
    index_modality: str
    hits: list[Hit]


class Alignment(BaseModel):
    distance: float
    mean_cost: float
    frames: list[int]
    frame_seconds: float
    path: list[list[int]]
    picture: str


class Caption(BaseModel):
    run: str
    caption: str


class Health(BaseModel):
    status: str
    runs: int
    indexes: int


class Catalogue(BaseModel):
    runs: list[dict[str, Any]]
    indexes: list[dict[str, Any]]
    captioners: list[str] = []
    limits: dict[str, Any]
    voices: list[str] = []


# ---------------------------------------------------------------------------- loading


def _folders(
    root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], marker: str, also: str | None = None
) -> tuple[list[Path], bool]:
    """(folders, scanned): one folder holding ``marker``, the sub-folders of a folder that hold it, or a list.

    ``scanned`` is true for the sub-folders of a folder: there a broken one is skipped, not fatal.
    ``also``: another marker that counts as a run folder of a different kind (a captioner run beside
    experiment runs): such folders are left out here, and only a root with neither is an error.
    """
    if isinstance(root, (str, os.PathLike)):
        root = Path(root)
        if (root / marker).is_file():
            return [root], False
        if also is not None and (root / also).is_file():
            return [], False
        if not root.is_dir():
            raise ConfigError(f"{root}: no such folder")
        found = sorted(p for p in root.iterdir() if (p / marker).is_file())
        if not found and not (also is not None and any((p / also).is_file() for p in root.iterdir())):
            raise ConfigError(f"{root}: no folder with {marker} in it")
        return found, True
    return [Path(p) for p in root if also is None or not (Path(p) / also).is_file()], False


def _captioner_folders(root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(root, (str, os.PathLike)):
        root = Path(root)
        return (
            [root] if (root / CAPTIONER).is_file() else sorted(p for p in root.iterdir() if (p / CAPTIONER).is_file())
        )
    return [Path(p) for p in root if (Path(p) / CAPTIONER).is_file()]


class Catalog:
    """Runs and indexes by name, loaded once.

    In a folder of runs, a run that cannot be loaded (unfinished: no weights yet; broken: weights that do
    not fit its config) is skipped with a one-line warning, so one bad folder does not stop the server;
    likewise an index in a folder of indexes whose run cannot be loaded or has changed.
    """

    def __init__(self, runs: Any, index_dir: Any, device: str | None) -> None:
        self.runs: dict[str, LoadedRun] = {}
        self.voices: dict[str, DigitSynthesizer] = {}  # text-to-speech runs by folder name
        self.captioners = {folder.name: LoadedCaptioner(folder, device) for folder in _captioner_folders(runs)}
        folders, scanned = _folders(runs, "experiment.yaml", also=CAPTIONER)
        for folder in folders:
            try:
                if is_speech_config(folder / "experiment.yaml"):
                    self._add_speech_run(folder)
                else:
                    self._add_run(LoadedRun(folder, device))
            except ChorusError as err:
                if not scanned:
                    raise
                log.warning("skipping run %s: %s", folder, err)
        if not self.runs and not self.voices and not self.captioners:
            raise ConfigError(f"{runs}: none of its run folders could be loaded (see the warnings above)")
        self.indexes: dict[str, SearchIndex] = {}
        self.index_runs: dict[str, LoadedRun] = {}
        if index_dir is not None:
            folders, scanned = _folders(index_dir, "index.json")
            for folder in folders:
                try:
                    self._add_index(folder, device)
                except ChorusError as err:
                    if not scanned:
                        raise
                    log.warning("skipping index %s: %s", folder, err)

    def _add_index(self, folder: Path, device: str | None) -> None:
        index = SearchIndex(folder)
        run = next((r for r in self.runs.values() if str(r.run_dir) == index.meta["run_dir"]), None)
        run = run or self._add_run(LoadedRun(index.meta["run_dir"], device))
        index.check_model(run)
        if index.name in self.indexes:
            raise ConfigError(f"two indexes are named {index.name!r}: rename one folder")
        self.indexes[index.name], self.index_runs[index.name] = index, run

    def _add_run(self, run: LoadedRun) -> LoadedRun:
        if run.name in self.runs:
            raise ConfigError(f"two runs are named {run.name!r} ({self.runs[run.name].run_dir}, {run.run_dir})")
        self.runs[run.name] = run
        return run

    def _add_speech_run(self, folder: Path) -> None:
        """Text-to-speech runs are served by ``/speak``; recogniser runs are not served (``chorus transcribe``)."""
        cfg, model = load_speech_run(folder)
        if cfg.model.task == "synthesize":
            self.voices[folder.name] = model  # type: ignore[assignment]

    def voice(self, name: str | None) -> tuple[str, DigitSynthesizer]:
        if not self.voices:
            raise BadInput(404, "run: this server has no text-to-speech run (train one with `chorus train speech_tts`)")
        name = name or next(iter(self.voices))
        if name not in self.voices:
            raise BadInput(404, f"run: unknown text-to-speech run {name!r}; available: {', '.join(self.voices)}")
        return name, self.voices[name]

    def run(self, name: str | None, modality: str, zero_shot: bool = False) -> LoadedRun:
        """The named run, or the first that reads ``modality`` (and can classify it, if ``zero_shot``)."""
        if name:
            if name not in self.runs:
                raise BadInput(404, f"run: unknown run {name!r}; available: {', '.join(self.runs)}")
            return self.runs[name]
        for run in self.runs.values():
            if modality in run.modalities and run.vqa is None and (not zero_shot or run.can_zero_shot(modality)):
                return run
        need = "classify" if zero_shot else "embed"
        raise BadInput(422, f"no loaded run can {need} {modality}; runs: {', '.join(self.runs)}")

    def vqa_run(self, name: str | None) -> LoadedRun:
        """The named run, or the first that answers questions about images (task ``vqa``)."""
        if name:
            return self.run(name, "image")
        found = next((run for run in self.runs.values() if run.vqa is not None), None)
        if found is None:
            raise BadInput(422, f"no loaded run answers questions (task 'vqa'); runs: {', '.join(self.runs)}")
        return found

    def captioner(self, name: str | None) -> LoadedCaptioner:
        """The named captioner run, or the first one."""
        if not self.captioners:
            raise BadInput(404, "run: this server has no captioner run (a folder with captioner.json)")
        if name and name not in self.captioners:
            raise BadInput(404, f"run: unknown captioner {name!r}; available: {', '.join(self.captioners)}")
        return self.captioners[name or next(iter(self.captioners))]

    def index(self, name: str | None) -> tuple[SearchIndex, LoadedRun]:
        if not self.indexes:
            raise BadInput(404, "index: this server has no search index (start it with --index-dir)")
        if not name:
            name = next(iter(self.indexes))
        if name not in self.indexes:
            raise BadInput(404, f"index: unknown index {name!r}; available: {', '.join(self.indexes)}")
        return self.indexes[name], self.index_runs[name]


# ---------------------------------------------------------------------------- the app


def _one_query(image: UploadFile | None, audio: UploadFile | None, text: str | None, limits: Limits) -> tuple[str, Any]:
    given = [name for name, value in (("image", image), ("audio", audio), ("text", text)) if value is not None]
    if len(given) != 1:
        raise BadInput(422, f"send exactly one of the fields image, audio or text (got {given or 'none'})")
    if image is not None:
        return "image", read_image("image", image.file.read(limits.max_body_bytes + 1), image.content_type, limits)
    if audio is not None:
        return "audio", read_audio("audio", audio.file.read(limits.max_body_bytes + 1), audio.content_type, limits)
    return "text", read_text("text", text, limits)


def _page() -> tuple[str, dict[str, bytes]]:
    static = resources.files("chorus.serve") / "static"
    return (static / "index.html").read_text(encoding="utf-8"), {n: (static / n).read_bytes() for n in ASSETS}


def create_app(
    runs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    device: str | None = None,
    limits: Limits = Limits(),
) -> FastAPI:
    """Load ``runs`` (a run folder, a folder of runs, or a list) and the indexes in ``index_dir`` into an app."""
    catalog = Catalog(runs, index_dir, device)
    html, assets = _page()
    app = FastAPI(
        title="Chorus",
        version="1",
        description="Embed, classify, search and align images, audio and text with trained Chorus runs.",
    )
    app.state.catalog = catalog

    @app.exception_handler(BadInput)
    def bad_input(_: Request, err: BadInput) -> JSONResponse:
        return JSONResponse({"detail": err.message}, status_code=err.status)

    @app.exception_handler(ChorusError)
    def chorus_error(_: Request, err: ChorusError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422 if isinstance(err, DataError) else 400)

    @app.get("/health", response_model=Health, tags=["info"])
    def health() -> Health:
        """Liveness: the server is up and how many runs and indexes it loaded."""
        return Health(status="ok", runs=len(catalog.runs), indexes=len(catalog.indexes))

    @app.get("/runs", response_model=Catalogue, tags=["info"])
    def list_runs() -> Catalogue:
        """The loaded runs (task, modalities, classes) and search indexes, and the request limits."""
        return Catalogue(
            runs=[r.describe() for r in catalog.runs.values()],
            indexes=[i.describe() for i in catalog.indexes.values()],
            captioners=list(catalog.captioners),
            limits=asdict(limits),
            voices=list(catalog.voices),
        )

    @app.post("/embed", response_model=Embedding, tags=["models"])
    def embed(
        image: Annotated[UploadFile | None, File(description="an image file")] = None,
        audio: Annotated[UploadFile | None, File(description="a WAV/FLAC/OGG clip")] = None,
        text: Annotated[str | None, Form(description="text to embed")] = None,
        run: Annotated[str | None, Form(description="run name (default: first that reads the modality)")] = None,
    ) -> Embedding:
        """Embed one image, audio clip or text; the vector is unit-norm (cosine = dot product)."""
        modality, raw = _one_query(image, audio, text, limits)
        loaded = catalog.run(run, modality)
        loaded.require(modality)
        vector = loaded.embed(modality, raw)
        return Embedding(run=loaded.name, modality=modality, dim=vector.numel(), vector=vector.cpu().tolist())

    @app.post("/zeroshot", response_model=Prediction, tags=["models"])
    def zeroshot(
        image: Annotated[UploadFile | None, File(description="an image file")] = None,
        audio: Annotated[UploadFile | None, File(description="a WAV/FLAC/OGG clip")] = None,
        classes: Annotated[
            str | None, Form(description="class names, comma-separated (default: the run's classes)")
        ] = None,
        run: Annotated[str | None, Form(description="run name")] = None,
    ) -> Prediction:
        """Rank class names for an image or a clip by zero-shot similarity (or the run's classifier head)."""
        modality, raw = _one_query(image, audio, None, limits)
        names = read_classes("classes", classes, limits)
        loaded = catalog.run(run, modality, zero_shot=True)
        ranked = loaded.classify(modality, raw, names)
        return Prediction(run=loaded.name, modality=modality, labels=[Label(label=n, score=s) for n, s in ranked])

    @app.post("/ask", response_model=VQAAnswer, tags=["models"])
    def ask(
        image: Annotated[UploadFile, File(description="an image file")],
        question: Annotated[str, Form(description="a question about the image")],
        run: Annotated[str | None, Form(description="run name (default: the first VQA run)")] = None,
    ) -> VQAAnswer:
        """Answer a question about an image with a VQA run: answers ranked by probability (+ attention over cells)."""
        raw = read_image("image", image.file.read(limits.max_body_bytes + 1), image.content_type, limits)
        text = read_text("question", question, limits)
        loaded = catalog.vqa_run(run)
        answer = loaded.ask(raw, text)
        return VQAAnswer(
            run=loaded.name,
            question=text,
            answer=answer.answer,
            attention=answer.attention,
            answers=[Label(label=k, score=v) for k, v in answer.probabilities.items()],
        )

    @app.post("/search", response_model=SearchResult, tags=["search"])
    def search(
        image: Annotated[UploadFile | None, File(description="an image query")] = None,
        audio: Annotated[UploadFile | None, File(description="an audio query")] = None,
        text: Annotated[str | None, Form(description="a text query")] = None,
        index: Annotated[str | None, Form(description="index name (default: the first)")] = None,
        k: Annotated[int, Form(description="how many neighbours")] = 8,
    ) -> SearchResult:
        """Nearest items of an index to a query in any modality its run encodes, with preview URLs."""
        if not 1 <= k <= limits.max_k:
            raise BadInput(422, f"k: must be between 1 and {limits.max_k}, got {k}")
        modality, raw = _one_query(image, audio, text, limits)
        found, loaded = catalog.index(index)
        loaded.require(modality)
        hits = []
        for rank, (pos, score) in enumerate(found.search(loaded.embed(modality, raw), k), start=1):
            item = found.items[pos]
            media = found.modality if "media" in item else None
            hits.append(
                Hit(
                    rank=rank,
                    item=pos,
                    score=score,
                    label=item.get("label"),
                    text=item.get("text"),
                    media_url=f"/media/{found.name}/{pos}" if media else None,
                    media_type=media,
                )
            )
        return SearchResult(
            index=found.name, run=loaded.name, query_modality=modality, index_modality=found.modality, hits=hits
        )

    @app.post("/align", response_model=Alignment, tags=["alignment"])
    def align(
        a: Annotated[UploadFile, File(description="first recording (WAV/FLAC/OGG)")],
        b: Annotated[UploadFile, File(description="second recording")],
    ) -> Alignment:
        """Align two recordings with DTW over log-mel frames: path, distance and a picture."""
        clip_limits = replace(limits, max_audio_seconds=min(limits.max_audio_seconds, MAX_ALIGN_SECONDS))
        clips = [
            read_audio(name, f.file.read(limits.max_body_bytes + 1), f.content_type, clip_limits)
            for name, f in (("a", a), ("b", b))
        ]
        return Alignment(**align_audio(*clips))

    @app.post("/speak", tags=["models"], responses={200: {"content": {"audio/wav": {}}}})
    def speak_text(
        text: Annotated[str, Form(description='a digit string as words, e.g. "four two seven"')],
        run: Annotated[str | None, Form(description="text-to-speech run name (default: the first)")] = None,
    ) -> Response:
        """Say a digit string: 8 kHz 16-bit WAV from a text-to-speech run (Griffin-Lim vocoder)."""
        words = read_text("text", text, limits)
        name, model = catalog.voice(run)
        digits = text_to_digits(words)
        if not 1 <= len(digits) <= MAX_SPOKEN_DIGITS:
            raise BadInput(422, f"text: say 1 to {MAX_SPOKEN_DIGITS} digit words, got {len(digits)}")
        buffer = io.BytesIO()
        sf.write(buffer, synthesize_wave(model, digits).numpy(), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        return Response(buffer.getvalue(), media_type="audio/wav", headers={"X-Chorus-Run": name})

    @app.post("/caption", response_model=Caption, tags=["models"])
    def caption(
        image: Annotated[UploadFile, File(description="an image file")],
        run: Annotated[str | None, Form(description="captioner run name (default: the first)")] = None,
    ) -> Caption:
        """Describe an image in words with a captioner run (beam search, the run's default width)."""
        _, raw = _one_query(image, None, None, limits)
        loaded = catalog.captioner(run)
        return Caption(run=loaded.name, caption=loaded.caption([raw])[0])

    @app.get("/media/{index}/{item}", tags=["search"], responses={200: {"content": {"image/png": {}, "audio/wav": {}}}})
    def media(index: str, item: int) -> Response:
        """The stored preview (PNG thumbnail or WAV clip) of item number ``item`` of an index."""
        found, _ = catalog.index(index)
        preview = found.media(item) if 0 <= item < len(found.items) else None
        if preview is None:
            raise BadInput(404, f"item: index {index!r} has no preview for item {item}")
        data, media_type = preview
        return Response(data, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in assets:
            raise BadInput(404, f"no asset {name!r}")
        return Response(assets[name], media_type=ASSETS[name])

    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    return app
