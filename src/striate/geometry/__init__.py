"""3D vision (lecture 11): synthetic primitives as point clouds, meshes, voxel grids and depth
maps; shape metrics (voxel IoU, Chamfer distance, F1@t, normal consistency); graph convolution on
meshes; an icosphere deformed to a target (Pixel2Mesh in miniature); PointNet classification of
the primitives through the engine; the scale-invariant depth loss.

    from striate import geometry
    points, normals = geometry.sample_surface("torus", 2048, seed=0)
    geometry.chamfer_distance(points[None], other[None])          # (B,)
    geometry.f_score(pred, gt, t=0.05)                            # (f1, precision, recall)
    depth = geometry.render_depth("box", geometry.Camera(size=(64, 64)))
"""

from striate.geometry.classify import (
    CLASSES,
    CloudLoader,
    PointNet,
    PointNetResult,
    primitive_clouds,
    random_rotations,
    train_pointnet,
)
from striate.geometry.deform import Deformation, MeshDeformer, deform_to_target, plot_deformation
from striate.geometry.depth import Camera, render_depth, render_mesh_depth, scale_invariant_loss
from striate.geometry.graph import (
    GraphConv,
    edge_length_loss,
    laplacian_loss,
    mesh_adjacency,
    mesh_edges,
    neighbour_sum,
)
from striate.geometry.metrics import (
    chamfer_distance,
    f_score,
    nearest_neighbors,
    normal_consistency,
    voxel_iou,
)
from striate.geometry.primitives import (
    SHAPES,
    face_normals,
    icosahedron,
    icosphere,
    mesh,
    sample_mesh,
    sample_surface,
    sdf,
    subdivide,
    voxel_grid,
    voxelize,
)

__all__ = [
    "CLASSES",
    "SHAPES",
    "Camera",
    "CloudLoader",
    "Deformation",
    "GraphConv",
    "MeshDeformer",
    "PointNet",
    "PointNetResult",
    "chamfer_distance",
    "deform_to_target",
    "edge_length_loss",
    "f_score",
    "face_normals",
    "icosahedron",
    "icosphere",
    "laplacian_loss",
    "mesh",
    "mesh_adjacency",
    "mesh_edges",
    "nearest_neighbors",
    "neighbour_sum",
    "normal_consistency",
    "plot_deformation",
    "primitive_clouds",
    "random_rotations",
    "render_depth",
    "render_mesh_depth",
    "sample_mesh",
    "sample_surface",
    "scale_invariant_loss",
    "sdf",
    "subdivide",
    "train_pointnet",
    "voxel_grid",
    "voxelize",
    "voxel_iou",
]
