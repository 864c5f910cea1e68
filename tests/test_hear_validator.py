"""``featurekit.neural.hear`` through the HEAR 2021 validator's own checks.

The validator is ``hearvalidator`` 2021.0.2 (``pip install --no-deps hearvalidator==2021.0.2``;
``.ci/run`` installs it: its declared dependencies would pull TensorFlow). Its checks run
unchanged on mn04_as (the published weights when ``FEATUREKIT_WEIGHTS_DIR`` is set, else
untrained ones), with two adjustments, both outside what it checks of featurekit:

* it imports TensorFlow, which it uses only for TensorFlow models: where TensorFlow is not
  installed a stub module stands in (featurekit returns torch modules, never a ``tf.Module``);
* it lists 16, 22.05, 44.1 and 48 kHz as the accepted rates; later releases
  (hearbenchmark/hear-validator) add 32 kHz, mn04_as's rate, so the list gets it here.
"""

from __future__ import annotations

import os
import sys
import types

import pytest

from featurekit.neural.embedding import torch_threads


@pytest.fixture
def validate_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        stub = types.ModuleType("tensorflow")
        # The validator asks isinstance(model, tf.Module) before trying torch.nn.Module.
        stub.Module = type("Module", (), {})
        monkeypatch.setitem(sys.modules, "tensorflow", stub)
    validate = pytest.importorskip(
        "hearvalidator.validate",
        reason="pip install --no-deps hearvalidator==2021.0.2 (as .ci/run does)")
    rates = [*validate.ValidateModel.ACCEPTABLE_SAMPLE_RATE, 32000]
    monkeypatch.setattr(validate.ValidateModel, "ACCEPTABLE_SAMPLE_RATE", rates)
    return validate


def _mn04_weights() -> str:
    if not os.environ.get("FEATUREKIT_WEIGHTS_DIR"):
        return "untrained"
    from featurekit.neural.registry import resolve_weights

    return str(resolve_weights("mn04_as", offline=True))


def test_hear_module_passes_the_hear_validator(validate_module):
    # One torch thread: the machine is shared, and spinning threads slow the passes down.
    with torch_threads(1):
        validate_module.ValidateModel("featurekit.neural.hear", _mn04_weights(),
                                      device="cpu")()
