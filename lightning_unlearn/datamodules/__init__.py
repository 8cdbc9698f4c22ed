"""Forget/retain data: deletion requests and the DataModules built from them."""

from lightning_unlearn.datamodules.angles import ANGLE_DATASETS, AngleFeaturesDataModule, load_angle_features
from lightning_unlearn.datamodules.authors import (
    AuthorsQA,
    FictitiousAuthorsDataModule,
    generate_authors,
    qa_pairs,
    split_authors,
)
from lightning_unlearn.datamodules.diffusion import CaptionedImages, FashionMNISTConceptDataModule, load_captioned_fashion_mnist
from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS, CombineMode, ForgetRetainDataModule, TrainOn
from lightning_unlearn.datamodules.loaders import ResumableDataLoader
from lightning_unlearn.datamodules.movielens import MovieLens, load_movielens_100k
from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, Probe, filter_known, probe_correct
from lightning_unlearn.datamodules.reasoning import ReasoningTracesDataModule, TraceCollator, reasoning_traces
from lightning_unlearn.datamodules.recommendation import InteractionTriples, RecommendationDataModule
from lightning_unlearn.datamodules.request import DeletionRequest, dataset_targets, resolve_request
from lightning_unlearn.datamodules.trace_editing import TraceAnalyst, TraceRewriter, edit_traces, span_scores
from lightning_unlearn.datamodules.vision import (
    FASHION_MNIST_CLASSES,
    DigitsDataModule,
    FashionMNISTDataModule,
    LabeledTensorDataset,
    load_digits_dataset,
    load_fashion_mnist,
)
from lightning_unlearn.datamodules.vqa import FashionVQADataModule, VQACollator, VQADataset, fashion_vqa
from lightning_unlearn.datamodules.wikipedia import (
    ENTITY_FACTS,
    RealEntityDataModule,
    entity_probes,
    fact_examples,
    wikipedia_articles,
)

__all__ = [
    "FashionVQADataModule",
    "VQACollator",
    "VQADataset",
    "fashion_vqa",
    "ANGLE_DATASETS",
    "AngleFeaturesDataModule",
    "load_angle_features",
    "CaptionedImages",
    "FashionMNISTConceptDataModule",
    "load_captioned_fashion_mnist",
    "ENTITY_FACTS",
    "EVAL_SPLITS",
    "FASHION_MNIST_CLASSES",
    "GENERAL_KNOWLEDGE",
    "AuthorsQA",
    "CombineMode",
    "DeletionRequest",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "FictitiousAuthorsDataModule",
    "ForgetRetainDataModule",
    "InteractionTriples",
    "LabeledTensorDataset",
    "MovieLens",
    "RealEntityDataModule",
    "ReasoningTracesDataModule",
    "TraceAnalyst",
    "TraceCollator",
    "TraceRewriter",
    "RecommendationDataModule",
    "ResumableDataLoader",
    "Probe",
    "TrainOn",
    "dataset_targets",
    "entity_probes",
    "fact_examples",
    "filter_known",
    "generate_authors",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_movielens_100k",
    "probe_correct",
    "qa_pairs",
    "reasoning_traces",
    "edit_traces",
    "span_scores",
    "resolve_request",
    "split_authors",
    "wikipedia_articles",
]
