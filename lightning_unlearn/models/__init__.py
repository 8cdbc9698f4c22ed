"""Models used by the benchmarks and tests: small plain-torch ones, a content-aware recommender, a ViT, causal LMs, a vision-language model (EfficientNet-Lite0 + SmolLM2) and a hybrid quantum-classical classifier
(nothing downloaded).

``transformers`` and ``pennylane`` are imported only when a model that needs them is built or loaded.
"""

from lightning_unlearn.models.cnn import MLP, SmallCNN
from lightning_unlearn.models.diffusion import ConceptDiffusionPipeline, concept_unet
from lightning_unlearn.models.lightgcn import ContentLightGCN, MovieLensLightGCN
from lightning_unlearn.models.llm import load_smollm2, smollm2, smollm2_tokenizer, tiny_llama, train_tokenizer
from lightning_unlearn.models.quantum import HybridQuantumClassifier
from lightning_unlearn.models.recommender import ContentMF, MovieLensMF
from lightning_unlearn.models.vit import ViTClassifier
from lightning_unlearn.models.vlm import VisionLanguageModel, fashion_vlm, smollm2_vlm, tiny_vlm, tiny_vlm_tokenizer

__all__ = [
    "MLP",
    "ConceptDiffusionPipeline",
    "ContentLightGCN",
    "ContentMF",
    "HybridQuantumClassifier",
    "MovieLensLightGCN",
    "MovieLensMF",
    "SmallCNN",
    "ViTClassifier",
    "VisionLanguageModel",
    "concept_unet",
    "fashion_vlm",
    "load_smollm2",
    "smollm2_vlm",
    "smollm2",
    "smollm2_tokenizer",
    "tiny_llama",
    "tiny_vlm",
    "tiny_vlm_tokenizer",
    "train_tokenizer",
]
