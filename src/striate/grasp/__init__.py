"""Parallel-jaw grasping after Dex-Net 2.0 (Mahler et al. 2017), at small scale.

    from striate.grasp import random_scenes, observe, robustness, make_dataset, GQCNN, cem_plan

- `scenes`: random extruded polygons on a table, top-down depth images, Dex-Net's noise.
- `analytic`: contacts, friction cones, collision and depth checks; Monte-Carlo robustness.
- `dataset`: labelled grasp candidates (balanced), saved as safetensors.
- `gqcnn`: grasp-aligned crops (affine_grid/grid_sample), the GQ-CNN, its engine Task.
- `planners`: antipodal sampling from depth edges, the cross-entropy method.
- `run`: the jobs behind `striate grasp generate|train|plan`.
"""

from striate.grasp.analytic import Gripper, Uncertainty, grasp_success, robustness
from striate.grasp.dataset import GraspDataset, make_dataset
from striate.grasp.gqcnn import GQCNN, GraspQuality, TensorBatches, aligned_crops
from striate.grasp.planners import antipodal_candidates, cem_plan, fit_gmm, random_candidates
from striate.grasp.scenes import Scenes, observe, random_scenes, render

__all__ = [
    "GQCNN",
    "GraspDataset",
    "GraspQuality",
    "Gripper",
    "Scenes",
    "TensorBatches",
    "Uncertainty",
    "aligned_crops",
    "antipodal_candidates",
    "cem_plan",
    "fit_gmm",
    "grasp_success",
    "make_dataset",
    "observe",
    "random_candidates",
    "random_scenes",
    "render",
    "robustness",
]
