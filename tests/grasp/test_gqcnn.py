"""The GQ-CNN task: metrics against scikit-learn, training beats the majority class."""

import pytest
import torch
from sklearn.metrics import accuracy_score, precision_score, recall_score

from striate.engine.trainer import Trainer
from striate.errors import ConfigError
from striate.grasp.dataset import GraspDataset, make_dataset
from striate.grasp.gqcnn import GQCNN, GraspQuality, TensorBatches
from striate.grasp.run import TrainSettings, split_scenes, train_gqcnn


def test_evaluation_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    crops, z = torch.randn(300, 1, 16, 16, generator=g), torch.rand(300, generator=g)
    y = torch.randint(0, 2, (300,), generator=g)
    torch.manual_seed(0)
    net = GQCNN(crop=16, width=4).eval()
    with torch.no_grad():  # shift the robust logit so that about half the grasps are called robust
        logits = net(crops, z)
        net.head[-1].bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    trainer = Trainer(epochs=1, task=GraspQuality(), progress=False, device="cpu")
    metrics = trainer.evaluate(net, TensorBatches(crops, z, y, batch_size=64, shuffle=False))
    pred = net(crops, z).argmax(1).numpy()
    assert 0.2 < pred.mean() < 0.8
    assert metrics["acc"] == pytest.approx(accuracy_score(y.numpy(), pred))
    assert metrics["precision"] == pytest.approx(precision_score(y.numpy(), pred))
    assert metrics["recall"] == pytest.approx(recall_score(y.numpy(), pred))
    assert torch.allclose(net.probability(crops, z), net(crops, z).softmax(1)[:, 1], atol=1e-6)
    two = net.probability(crops, torch.stack([z, z + 0.01], 1))
    assert torch.allclose(two[:, 1], net.probability(crops, z + 0.01), atol=1e-6)


def test_dataset_round_trip_and_balance(tmp_path):
    data = make_dataset(30, seed=1, pairs=64, samples=8)
    assert len(data) > 0 and float(data.labels.float().mean()) == pytest.approx(0.5, abs=0.05)
    assert bool(((data.robustness > 0.5) == data.labels.bool()).all())
    data.save(tmp_path / "d.safetensors")
    back = GraspDataset.load(tmp_path / "d.safetensors")
    assert torch.equal(back.grasps, data.grasps) and torch.equal(back.images, data.images)
    train, test = split_scenes(30, 0.2, 0)
    assert len(test) == 6 and set(train.tolist()).isdisjoint(test.tolist())
    part = data.subset(test)
    assert len(part.scenes) == 6 and bool((part.scene < 6).all())


def test_training_beats_the_majority_class():
    data = make_dataset(160, seed=0, pairs=128, samples=16)
    net, metrics = train_gqcnn(data, TrainSettings(epochs=4, width=8, seed=0))
    assert metrics["acc"] > metrics["majority_acc"] + 0.1, metrics


def test_too_little_data_is_refused():
    data = make_dataset(1, seed=0, pairs=8, samples=4)
    with pytest.raises(ConfigError, match="at least 2 scenes"):
        train_gqcnn(data)
