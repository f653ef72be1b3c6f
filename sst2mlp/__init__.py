"""sst2mlp: accuracy vs FLOPs, parameters, latency and training time of a bag-of-words MLP on SST-2.

Names are imported lazily, so that `sst2mlp.report` (JSON and matplotlib only) never loads torch.
"""
from importlib import import_module

_EXPORTS = {
    "reference.data": ("SST2", "DataError", "Split", "load_sst2"),
    "reference.features": ("BagOfWords", "FeatureCache", "Features", "Vocabulary", "featurize", "tokenize"),
    "reference.model": ("MLP", "ModelConfig", "count_flops", "count_params"),
    "reference.training": ("TrainConfig", "TrainResult", "accuracy", "predict_logits", "train"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'sst2mlp' has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
