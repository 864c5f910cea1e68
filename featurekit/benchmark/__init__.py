"""The benchmark engine: how much does each branch add, with verdicts a reviewer can trust.

The flow, one module per stage:

* :mod:`~featurekit.benchmark.data` -- the features table checked and turned into arrays;
  each clip's source recording (when known) is the group that every inner split and every
  early-stopping split keeps whole.
* :mod:`~featurekit.benchmark.plan` -- the systems of the ablation (its branch subsets,
  :mod:`~featurekit.benchmark.ablation`: every branch alone, all handcrafted, all, all but
  each by default; x heads x fusions) and the work units they need, as data.
* :mod:`~featurekit.benchmark.execute` -- the units run in parallel (joblib processes or a
  Dask cluster); each fits one head on an outer fold's training rows, ``repeats`` times with
  other seeds and inner splits.
* :mod:`~featurekit.benchmark.fuse` -- late fusions, the blend and the ``auto`` selections,
  fitted on inner out-of-fold predictions with the steps of the :mod:`featurekit.fusion`
  estimators.
* :mod:`~featurekit.benchmark.score` -- metrics (:mod:`sklearn.metrics`) and paired
  comparisons with a two-level bootstrap over source recordings and repeats
  (:mod:`~featurekit.benchmark.resample`).
* :mod:`~featurekit.benchmark.results` and :mod:`~featurekit.benchmark.report` --
  ``results.json``, ``report.md`` and plots.

The primary comparison is fixed in advance: ``auto`` (per outer fold, the head x fusion over
every branch with the best inner out-of-fold accuracy on the training folds) against
``neural-auto`` (the same among single neural branches and, with several, the neural branches
fused together); so is the synergy comparison,
``auto`` against ``single-auto`` (the same among systems of one group only: the handcrafted
branches together, or one neural branch alone). Anything chosen by test accuracy (best single
branch, best fusion) is reported as exploratory.

Entry points: :func:`run` (a dataset directory, as ``featurekit benchmark``),
:func:`benchmark_store` (a feature store) and :func:`run_benchmark` (a features table).
"""

from featurekit._util.lazy import lazy_getattr
from featurekit._util.parallel import BACKENDS
from featurekit.benchmark.config import (
    AUTO,
    BENCHMARK_FUSIONS,
    HANDCRAFTED_FAMILIES,
    NEURAL_AUTO,
    BenchmarkConfig,
)
from featurekit.names import HANDCRAFTED_BRANCH, SEQUENCE_HEAD_NAMES

# The stages (pandas, scikit-learn, XGBoost) are imported on first use: the configuration is
# enough to build the CLI's parser.
__getattr__ = lazy_getattr(__name__, {
    "branch_selectors": "featurekit.benchmark.data",
    "BenchmarkRun": "featurekit.benchmark.driver",
    "benchmark_store": "featurekit.benchmark.driver",
    "run": "featurekit.benchmark.driver",
    "run_benchmark": "featurekit.benchmark.engine",
    "ablation_subsets": "featurekit.benchmark.ablation",
    "system_name": "featurekit.benchmark.plan",
    "load_results": "featurekit.benchmark.results",
    "save_results": "featurekit.benchmark.results",
}, globals())

__all__ = ["AUTO", "BACKENDS", "BENCHMARK_FUSIONS", "HANDCRAFTED_BRANCH",
           "HANDCRAFTED_FAMILIES", "NEURAL_AUTO", "SEQUENCE_HEAD_NAMES", "BenchmarkConfig",
           "BenchmarkRun", "ablation_subsets", "benchmark_store", "branch_selectors",
           "load_results", "run", "run_benchmark", "save_results", "system_name"]
