"""Evaluation of frozen encoders: kNN, linear probe, retrieval, zero-shot classification
from prompts, distances, collapse diagnostics, plots."""

from jejax.eval.diagnostics import (
    alignment,
    effective_rank,
    embedding_std,
    per_dimension_std,
    rankme,
    singular_values,
    uniformity,
)
from jejax.eval.distances import (
    METRICS,
    cosine_similarity,
    euclidean_distance,
    hamming_distance,
    manhattan_distance,
    pairwise,
    sign_binarize,
    similarity,
    squared_euclidean_distance,
)
from jejax.eval.features import extract_features
from jejax.eval.knn import knn_accuracy, knn_predict
from jejax.eval.linear_probe import linear_probe, standardize
from jejax.eval.retrieval import mean_average_precision, recall_at_k
from jejax.eval.multimodal import (chance_recall, class_embeddings, cross_modal_recall,
                                   zero_shot_accuracy, zero_shot_predict)

__all__ = ["METRICS", "alignment", "chance_recall", "class_embeddings", "cosine_similarity",
           "cross_modal_recall", "effective_rank", "embedding_std", "euclidean_distance",
           "extract_features", "hamming_distance", "knn_accuracy", "knn_predict",
           "linear_probe", "manhattan_distance", "mean_average_precision", "pairwise",
           "per_dimension_std", "rankme", "recall_at_k", "sign_binarize", "similarity",
           "singular_values", "squared_euclidean_distance", "standardize", "uniformity",
           "zero_shot_accuracy", "zero_shot_predict"]
