"""The shared digit space of translation, with the frozen pretrained MiniLM text tower, on real MNIST."""

from __future__ import annotations

import pytest
import torch

from chorus.config import CONFIG_DIR
from chorus.data.captions import fill_template
from chorus.errors import ConfigError
from chorus.experiment import load_experiment
from chorus.translate.digits import PROTOCOLS, load_digit_data
from chorus.translate.retrieval import class_retrieval
from chorus.translate.space import SpaceConfig, bind_audio, train_space


@pytest.fixture(scope="module")
def data(real_data_root):
    return load_digit_data(real_data_root)


def test_speech_protocols_never_evaluate_a_training_clip(data):
    """Speaker protocol: theo's 500 clips vs the other five speakers; official: FSDD's takes 0-4 (all six
    speakers, 300 clips) vs takes 5-49. Binding pairs are same-digit and never reuse an image."""
    for protocol, (n_pairs, n_test) in zip(PROTOCOLS, ((2500, 500), (2700, 300))):
        pairs, test = data.speech_split(protocol)
        assert (len(pairs), len(test)) == (n_pairs, n_test), protocol
        assert not set(pairs[:, 0].tolist()) & set(test.tolist())
        assert torch.equal(data.digit_of_clip[pairs[:, 0]], data.digit_of_image[pairs[:, 1]])
        assert len(set(pairs[:, 1].tolist())) == len(pairs)
        assert set(pairs[:, 1].tolist()) <= set(data.mnist_train.tolist())
    official = data.speech_split("official")[1]
    assert data.repetition_of_clip[official].max() == 4 and len({data.speaker_of_clip[i] for i in official}) == 6
    assert {data.speaker_of_clip[i] for i in data.speech_split("speaker")[1]} == {"theo"}
    with pytest.raises(ConfigError):
        data.speech_split("nope")


def test_minilm_space_classifies_unseen_prompt_wording_and_binds_speech(data, tmp_path):
    """After 80 steps, prompts in templates never used for training pick the right digit for MNIST test
    images far above the 10 % chance; the frozen text table does not move; unknown prompts are an error.
    Binding speech (``colearn.bind_to_pivot``) for 150 steps puts held-out takes next to their digit's
    images well above chance (10 %) and leaves the image side untouched."""
    cfg = load_experiment(CONFIG_DIR / "mnist_clip.yaml")
    unseen = [fill_template(t, n) for t in cfg.model.zero_shot_templates for n in cfg.data.class_names]
    space = train_space(
        SpaceConfig.from_experiment(cfg), data, 80, tmp_path, seed=0, image_size="tiny", frozen_text_prompts=unseen
    )
    table = space.clip.encoders["text"].table.clone()
    images = space.embed_images(data.pixels[data.mnist_test])
    text = space.embed_texts(unseen).view(len(cfg.model.zero_shot_templates), 10, -1).mean(0)
    accuracy = float(((images @ text.T).argmax(1) == data.digit_of_image[data.mnist_test]).float().mean())
    assert accuracy >= 0.5, accuracy
    assert torch.equal(space.clip.encoders["text"].table, table)
    with pytest.raises(ConfigError, match="not in the text-embedding cache"):
        space.embed_texts(["a prompt the cache never saw"])
    image_before = space.embed_images(data.pixels[data.mnist_test[:200]])
    pairs, test = data.speech_split("official")
    bound = bind_audio(space, data, pairs, 150, tmp_path / "bind", seed=0)
    assert space.audio is None  # the space itself is not modified
    torch.testing.assert_close(bound.embed_images(data.pixels[data.mnist_test[:200]]), image_before)
    speech = bound.embed_audio([data.mels[i] for i in test])
    recall = class_retrieval(speech, data.digit_of_clip[test], images, data.digit_of_image[data.mnist_test], (1,))
    assert recall["R@1"] >= 0.45, recall  # measured 0.67
