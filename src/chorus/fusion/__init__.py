"""Multimodal fusion: joining modalities to predict (Baltrušaitis et al. 2019, "fusion").

Neural fusions share one interface, ``Fusion(dims, out_dim, **hyper)`` with
``forward(features, present=None) -> logits [B, out_dim]``, and are built by name
with ``build_fusion`` from the ``FUSIONS`` registry: ``early``, ``late_average``,
``late_learned``, ``late_product``, ``hybrid``, ``tensor``, ``low_rank_tensor``,
``gated``, ``cross_transformer``, ``autoencoder``. ``ModalityDropout`` makes
``present`` masks for training. Classical fusions follow the scikit-learn
estimator API: ``MultipleKernelClassifier``, ``HMMClassifier`` (needs the
optional ``hmmlearn``), ``BayesianProductFusion`` and ``HMMProductFusion`` (the two
combined: a graphical model of a sequence and a vector modality). ``FusionClassifier`` trains
encoders and a pooled fusion end to end (``model.task: fusion``). See ``docs/fusion.md``.
"""

from chorus.fusion.autoencoder import MultimodalAutoencoder
from chorus.fusion.base import FUSIONS, Fusion, build_fusion
from chorus.fusion.bayes_product import BayesianProductFusion, product_of_posteriors
from chorus.fusion.classifier import FusionClassifier
from chorus.fusion.cross_transformer import CrossModalTransformer
from chorus.fusion.early import EarlyFusion
from chorus.fusion.gated import GatedFusion
from chorus.fusion.graphical import HMMProductFusion
from chorus.fusion.hmm_classifier import HMMClassifier
from chorus.fusion.hybrid import HybridFusion
from chorus.fusion.kernel_learning import MultipleKernelClassifier
from chorus.fusion.late import LateFusion
from chorus.fusion.modality_dropout import ModalityDropout
from chorus.fusion.tensor import LowRankTensorFusion, TensorFusion, outer_product

__all__ = [
    "FUSIONS",
    "BayesianProductFusion",
    "CrossModalTransformer",
    "EarlyFusion",
    "Fusion",
    "FusionClassifier",
    "GatedFusion",
    "HMMClassifier",
    "HMMProductFusion",
    "HybridFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "ModalityDropout",
    "MultimodalAutoencoder",
    "MultipleKernelClassifier",
    "TensorFusion",
    "build_fusion",
    "outer_product",
    "product_of_posteriors",
]
