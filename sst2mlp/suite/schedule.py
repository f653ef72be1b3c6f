"""The order a run executes its benchmarks in: configuration by configuration, so that each configuration's models,
variants and runtime sessions can be released after its last benchmark (a run then holds one configuration at a
time: the default grid's 27 held at once needed 16 GB).

Configurations run from the ends of the size range inwards (`by_configuration`); within one, pytest's order stays:
its training first (whose warm-up round trains the weights every
impl runs), then latency, throughput and cold start, then any other file's benchmarks of that configuration.
"""
from __future__ import annotations

from collections.abc import Sequence

from sst2mlp.reference.model import ModelConfig

GRID_PARAMS = ("num_layers", "hidden_size", "vocab_size")


def configuration_of(item) -> ModelConfig | None:
    """The grid configuration a collected item measures, or None (a unit test, an item outside the grid)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if not all(name in params for name in GRID_PARAMS):
        return None
    return ModelConfig(*(params[name] for name in GRID_PARAMS))


def spread(count: int) -> list[int]:
    """0..count-1 with the ends first, the top end first, then the middle of the widest gap left, and so on (8, 0,
    4, 2, 6, 1, ... for 9): every prefix samples the whole range, and the run's one-off costs (its first trainings
    and builds pay for torch's and the runtimes' warm-up) land on a configuration whose own cost dwarfs them."""
    if count <= 2:
        return list(range(count))[::-1]
    order, gaps = [count - 1, 0], [(0, count - 1)]
    while gaps:
        low, high = gaps.pop(0)
        if high - low < 2:
            continue
        middle = (low + high) // 2
        order.append(middle)
        gaps += [(low, middle), (middle, high)]
    return order


def by_configuration(items: Sequence) -> list:
    """`items` grouped by configuration, the configurations from the smallest and the largest inwards (by
    `ModelConfig.relative_work`), so that the first tenth of a run already spans the grid and the progress line's
    estimate, a line through what was measured, holds from there; items of no configuration go first. A stable
    reordering: nothing is added or dropped, and within a configuration pytest's order stays."""
    configs = sorted({c for c in map(configuration_of, items) if c is not None}, key=lambda c: (c.relative_work(), c.id))
    position = {configs[index]: rank for rank, index in enumerate(spread(len(configs)))}
    return sorted(items, key=lambda item: position.get(configuration_of(item), -1))


def last_of_configuration(nodeids_and_configs: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, ModelConfig]:
    """node id -> configuration, for each configuration's last benchmark in run order: after it, nothing needs the
    configuration's models again."""
    last: dict[ModelConfig, str] = {}
    for nodeid, config in nodeids_and_configs:
        if config is not None:
            last[config] = nodeid
    return {nodeid: config for config, nodeid in last.items()}
