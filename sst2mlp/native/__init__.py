"""The C++ extension (kernel.py, csrc/): the fused forward pass the `fused` impls run and the sparse trainer's exact
Adam step over its input table, built at first use for this CPU. It imports nothing of the suite."""
