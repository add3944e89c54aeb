"""Semantic segmentation: fully convolutional networks (transposed convolution, unpooling, skip
connections, U-Net), per-pixel cross-entropy, mIoU and pixel accuracy, and the Segmentation task."""
