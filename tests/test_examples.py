import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPECTED = {
    "weather_regression.py": ["test RMSE", "least squares"],
    "batch_vs_sgd.py": ["batch", "mini-batch 32", "stochastic"],
    "lr_sweep.py": ["2/L", "smallest diverging", "wrote"],
    "logistic_regression.py": ["test accuracy", "sklearn weights"],
    "mlp_nonlinear.py": ["validation MSE", "wrote"],
    "compare_optax.py": ["same answer: True", "µs/step"],
    "loss_surface.py": ["wrote", "loss_surface_gd.png", "loss_surface_momentum.png"],
    "dict_batch_classifier.py": ["val accuracy", "best validation accuracy", "status:"],
    "lbfgs_breast_cancer.py": ["test accuracy: jgd", "largest weight difference"],
    "multiprocess_fit.py": ["process 0/2: 8 devices", "process 1/2: 8 devices", "\nagree\n"],
}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path):
    # JGD_EXAMPLE_QUICK: the examples that read it train on less (fewer epochs or rows);
    # every line checked here holds either way. multiprocess_fit.py is also the suite's
    # two-process gloo test (2 processes x 4 devices agree with one process).
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400 if name == "multiprocess_fit.py" else 120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "JGD_EXAMPLE_QUICK": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for text in EXPECTED[name]:
        assert text in run.stdout, (text, run.stdout[-1500:])
