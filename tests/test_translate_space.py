"""The shared digit space of translation, with the frozen pretrained MiniLM text tower, on real MNIST."""

from __future__ import annotations

import pytest
import torch

from chorus.config import CONFIG_DIR
from chorus.data.captions import fill_template
from chorus.errors import ConfigError
from chorus.experiment import load_experiment
from chorus.translate.digits import load_digit_data
from chorus.translate.space import train_space


def test_minilm_space_classifies_unseen_prompt_wording(real_data_root, tmp_path):
    """After 80 steps, prompts in templates never used for training pick the right digit for MNIST test
    images far above the 10 % chance; the frozen text table does not move; unknown prompts are an error."""
    cfg = load_experiment(CONFIG_DIR / "mnist_clip.yaml")
    data = load_digit_data(real_data_root)
    unseen = [fill_template(t, n) for t in cfg.model.zero_shot_templates for n in cfg.data.class_names]
    space = train_space(cfg, data, 80, tmp_path, seed=0, image_size="tiny", frozen_text_prompts=unseen)
    table = space.clip.encoders["text"].table.clone()
    images = space.embed_images(data.pixels[data.mnist_test])
    text = space.embed_texts(unseen).view(len(cfg.model.zero_shot_templates), 10, -1).mean(0)
    accuracy = float(((images @ text.T).argmax(1) == data.digit_of_image[data.mnist_test]).float().mean())
    assert accuracy >= 0.5, accuracy
    assert torch.equal(space.clip.encoders["text"].table, table)
    with pytest.raises(ConfigError, match="not in the text-embedding cache"):
        space.embed_texts(["a prompt the cache never saw"])
