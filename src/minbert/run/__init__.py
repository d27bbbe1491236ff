"""A training run, by responsibility: `inputs` (files -> examples), `fitting` (the one fitting path, shared
with the Python API), `posthoc` (post-hoc steps and final scores), `report`, `directory` (the output
directory, its log and results), `file_run` (`minbert train`), `refit` (`minbert refit`)."""

from minbert.run.file_run import train
from minbert.run.fitting import selection_metric
from minbert.run.refit import refit
from minbert.run.result import RunResult

__all__ = ["RunResult", "refit", "selection_metric", "train"]
