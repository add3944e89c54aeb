"""Data layer: ImageSet, dataset sources, splits, preprocessing, batched augmentation, loaders."""

from striate.data.box_augment import BoxCompose, BoxFlip, BoxJitter, BoxZoom, parse_box_augment
from striate.data.coco import read_coco, write_coco
from striate.data.detection_loader import DetectionLoader
from striate.data.detectionset import DetectionSet
from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader, StreamingLoader
from striate.data.preprocess import PCA, ZCA, MeanImage, Normalizer
from striate.data.registry import SOURCES, load_dataset
from striate.data.scenes import digit_scenes, scenes_from_sources
from striate.data.splits import kfold, stratified_split, train_val_split
from striate.data.voc import VOC_CLASSES, read_voc, write_voc

__all__ = [
    "VOC_CLASSES",
    "BoxCompose",
    "BoxFlip",
    "BoxJitter",
    "BoxZoom",
    "DetectionLoader",
    "DetectionSet",
    "digit_scenes",
    "parse_box_augment",
    "read_coco",
    "read_voc",
    "scenes_from_sources",
    "write_coco",
    "write_voc",
    "PCA",
    "SOURCES",
    "ZCA",
    "BatchLoader",
    "ImageSet",
    "MeanImage",
    "Normalizer",
    "StreamingLoader",
    "kfold",
    "load_dataset",
    "stratified_split",
    "train_val_split",
]
