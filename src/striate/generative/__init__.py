"""Generative models on the engine: autoencoders trained by the Trainer through the
`Reconstruction` task (later: VAE, GAN/DCGAN, PixelCNN).

    from striate.generative import Autoencoder, Reconstruction
    Trainer(epochs=5, task=Reconstruction("bce"), opt="adam", lr=1e-3).fit(Autoencoder(), train)
"""

from striate.generative.autoencoder import Autoencoder
from striate.generative.reconstruction import Reconstruction, psnr

__all__ = ["Autoencoder", "Reconstruction", "psnr"]
