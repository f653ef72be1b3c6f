"""The sst2mlp suite's pytest plugin (options, parametrization, fixtures, hooks) lives in the package."""
pytest_plugins = ("sst2mlp.suite.plugin",)
