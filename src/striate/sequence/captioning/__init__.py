"""Image captioning with soft attention (Show, Attend and Tell): captioned scenes, the CNN encoder
and attention LSTM decoder, greedy and beam-search decoding, BLEU, and the Captioning task."""
