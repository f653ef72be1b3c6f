"""The reference report's own pieces: SST-2 (data), the bag of words (features), the MLP and its cost (model), and
Adam training with its evaluation (training). They import only each other and the C++ extension (sst2mlp.native)."""
