"""Generative models on the engine: autoencoders (`Reconstruction`), the VAE
(`VariationalAutoencoding`, with the importance-weighted log-likelihood of Burda et al. 2015),
GAN/DCGAN (`GAN`, which owns the discriminator's optimiser), PixelCNN (`PixelModelling`),
sample quality measured in the features of a striate classifier (never called FID), pictures of
the latent space (`latent_manifold`, `latent_traversals`, `interpolation`), and classifiers
initialised from an autoencoder's encoder (`classifier_from_encoder`). The jobs behind
`striate generate` are in `striate.generative.jobs`.

    from striate.generative import Autoencoder, Reconstruction
    Trainer(epochs=5, task=Reconstruction("bce"), opt="adam", lr=1e-3).fit(Autoencoder(), train)
    Trainer(task=GAN(), opt="adam", lr=2e-4, momentum=0.5).fit(GANPair(G, D), batches)
"""

from striate.generative.autoencoder import Autoencoder
from striate.generative.dcgan import DCGANDiscriminator, DCGANGenerator
from striate.generative.gan import (
    GAN,
    GANPair,
    discriminator_loss,
    generate,
    latent_arithmetic,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from striate.generative.likelihood import importance_weighted_log_likelihood
from striate.generative.pixelcnn import MaskedConv2d, PixelCNN, PixelModelling
from striate.generative.pretraining import (
    EncoderClassifier,
    classifier_from_encoder,
    classifier_like_encoder,
    per_class,
)
from striate.generative.reconstruction import Reconstruction, psnr
from striate.generative.sample_quality import (
    ClassifierScore,
    PrecisionRecall,
    classifier_features,
    classifier_frechet_distance,
    classifier_score,
    feature_statistics,
    frechet_distance,
    precision_recall,
)
from striate.generative.vae import (
    ELBO,
    VAE,
    VAEOutput,
    VariationalAutoencoding,
    elbo,
    gaussian_kl,
    reparameterize,
)
from striate.generative.views import (
    arithmetic,
    draw_view,
    interpolation,
    latent_manifold,
    latent_traversals,
)

__all__ = [
    "ELBO",
    "GAN",
    "VAE",
    "Autoencoder",
    "ClassifierScore",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EncoderClassifier",
    "GANPair",
    "MaskedConv2d",
    "PixelCNN",
    "PixelModelling",
    "PrecisionRecall",
    "Reconstruction",
    "VAEOutput",
    "VariationalAutoencoding",
    "arithmetic",
    "classifier_features",
    "classifier_from_encoder",
    "classifier_like_encoder",
    "classifier_frechet_distance",
    "classifier_score",
    "discriminator_loss",
    "draw_view",
    "elbo",
    "feature_statistics",
    "frechet_distance",
    "gaussian_kl",
    "generate",
    "importance_weighted_log_likelihood",
    "interpolation",
    "latent_arithmetic",
    "latent_manifold",
    "latent_traversals",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "per_class",
    "precision_recall",
    "psnr",
    "reparameterize",
]
