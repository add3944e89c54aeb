"""The whole pipeline at a small scale (slow): the GQ-CNN-guided planners beat random grasps and
the unranked antipodal candidate, and stay below the analytic oracle."""

import pytest

from striate.grasp.dataset import make_dataset
from striate.grasp.run import TrainSettings, plan_scenes, train_gqcnn


@pytest.mark.slow
def test_planners_rank_between_random_and_the_oracle():
    data = make_dataset(600, seed=0)
    net, metrics = train_gqcnn(data, TrainSettings(epochs=6, seed=0))
    assert metrics["acc"] > 0.75 and metrics["precision"] > 0.7 and metrics["recall"] > 0.7
    r = plan_scenes(net, 60, seed=100)["results"]
    success = {k: v["success"] for k, v in r.items()}
    assert success["CEM + GQ-CNN"] > success["antipodal (first, no GQ-CNN)"] + 0.1
    assert success["antipodal + GQ-CNN"] > success["random"] + 0.2
    assert success["oracle (true robustness)"] >= max(success["CEM + GQ-CNN"],
                                                      success["antipodal + GQ-CNN"])  # fmt: skip
