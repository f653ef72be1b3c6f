import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sst2mlp import MLP, ModelConfig, count_flops, count_params


@pytest.mark.parametrize(
    "num_layers, hidden_size, vocab_size, flops, params",
    [(1, 128, 1000, 289_281, 144_769), (2, 256, 10000, 5_383_425, 2_692_097), (4, 512, 10000, 12_340_737, 6_171_649)],
)
def test_reference_report_examples(num_layers, hidden_size, vocab_size, flops, params):
    model = MLP(num_layers=num_layers, hidden_size=hidden_size, vocab_size=vocab_size)
    assert count_flops(model) == flops
    assert count_params(model) == params


@pytest.mark.parametrize("num_layers, hidden_size, vocab_size", [(1, 128, 1000), (2, 256, 5000), (4, 64, 300)])
def test_flops_equal_torch_flop_counter_plus_bias_adds(num_layers, hidden_size, vocab_size):
    model = MLP(num_layers, hidden_size, vocab_size)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, vocab_size))
    bias_adds = sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    assert count_flops(model) == counter.get_total_flops() + bias_adds


def test_architecture_is_input_hidden_output_with_relu():
    model = MLP(num_layers=2, hidden_size=8, vocab_size=20)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 8), (8, 8), (8, 8), (8, 1)]
    x = torch.rand(5, 20)
    h = torch.relu(linears[0](x))
    for layer in linears[1:-1]:
        h = torch.relu(layer(h))
    assert torch.allclose(model(x), linears[-1](h).squeeze(-1))
    assert model(x).shape == (5,)


@pytest.mark.parametrize("bad", [dict(num_layers=-1), dict(hidden_size=0), dict(vocab_size=2.5)])
def test_config_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ModelConfig(**{"num_layers": 1, "hidden_size": 8, "vocab_size": 10, **bad})


def test_config_id():
    assert ModelConfig(2, 256, 10000).id == "L2-H256-V10000"
