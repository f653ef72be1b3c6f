"""sst2mlp: accuracy vs FLOPs, parameters, latency and training time of a bag-of-words MLP on SST-2."""
from .data import SST2, DataError, Split, load_sst2
from .features import BagOfWords, FeatureCache, Features, Vocabulary, featurize, tokenize
from .model import MLP, ModelConfig, count_flops, count_params
from .training import TrainConfig, TrainResult, accuracy, predict_logits, train

__all__ = [
    "SST2", "DataError", "Split", "load_sst2",
    "BagOfWords", "FeatureCache", "Features", "Vocabulary", "featurize", "tokenize",
    "MLP", "ModelConfig", "count_flops", "count_params",
    "TrainConfig", "TrainResult", "accuracy", "predict_logits", "train",
]
