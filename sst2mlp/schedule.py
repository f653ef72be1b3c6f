"""The order a run executes its benchmarks in: configuration by configuration, so that each configuration's models,
variants and runtime sessions can be released after its last benchmark (a run then holds one configuration at a
time: the default grid's 27 held at once needed 16 GB).

Within a configuration pytest's own order stays: its training first (whose warm-up round trains the weights every
impl runs), then latency, throughput and cold start, then any other file's benchmarks of that configuration.
"""
from __future__ import annotations

from collections.abc import Sequence

from .model import ModelConfig

GRID_PARAMS = ("num_layers", "hidden_size", "vocab_size")


def configuration_of(item) -> ModelConfig | None:
    """The grid configuration a collected item measures, or None (a unit test, an item outside the grid)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if not all(name in params for name in GRID_PARAMS):
        return None
    return ModelConfig(*(params[name] for name in GRID_PARAMS))


def by_configuration(items: Sequence) -> list:
    """`items` grouped by configuration in the order each configuration first appears; items of no configuration
    keep their place before the grid's (a stable reordering: nothing is added or dropped)."""
    order: dict[ModelConfig | None, int] = {None: -1}
    for item in items:
        order.setdefault(configuration_of(item), len(order))
    return sorted(items, key=lambda item: order[configuration_of(item)])


def last_of_configuration(nodeids_and_configs: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, ModelConfig]:
    """node id -> configuration, for each configuration's last benchmark in run order: after it, nothing needs the
    configuration's models again."""
    last: dict[ModelConfig, str] = {}
    for nodeid, config in nodeids_and_configs:
        if config is not None:
            last[config] = nodeid
    return {nodeid: config for config, nodeid in last.items()}
