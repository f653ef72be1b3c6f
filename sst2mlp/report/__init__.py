"""Figures and tables from saved pytest-benchmark JSON; reads JSON and draws, never imports torch.

runs.py reads runs and checks the suite's contract, tables.py builds and renders the tables,
figures.py draws, cli.py is the `sst2mlp-report` command.
"""
from .cli import main, make_report
from .figures import FIGURES, pareto_front
from .runs import ReportError, load_runs

__all__ = ["FIGURES", "ReportError", "load_runs", "main", "make_report", "pareto_front"]
