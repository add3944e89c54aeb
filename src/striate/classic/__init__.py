"""Classical baselines with the scikit-learn estimator API, computed with torch on any device."""

from striate.classic.features import HOG, ColorHistogram
from striate.classic.knn import KNNClassifier, select_k
from striate.classic.linear import LinearClassifier, plot_templates, random_search
from striate.classic.nca import NCA, plot_embedding
from striate.classic.perceptron import Perceptron

__all__ = [
    "HOG",
    "NCA",
    "ColorHistogram",
    "KNNClassifier",
    "LinearClassifier",
    "Perceptron",
    "plot_embedding",
    "plot_templates",
    "random_search",
    "select_k",
]
