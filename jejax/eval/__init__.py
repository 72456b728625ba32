"""Evaluation of frozen encoders: kNN, linear probe, collapse diagnostics, plots."""

from jejax.eval.diagnostics import effective_rank, embedding_std, singular_values
from jejax.eval.features import extract_features
from jejax.eval.knn import knn_accuracy, knn_predict
from jejax.eval.linear_probe import linear_probe, standardize

__all__ = ["effective_rank", "embedding_std", "extract_features", "knn_accuracy",
           "knn_predict", "linear_probe", "singular_values", "standardize"]
