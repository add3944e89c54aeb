"""Models of sequences: RNN/LSTM/GRU from their equations, the truncated-BPTT stream loader and
the LanguageModel task, character and word language models, the neural cache, attention and
transformers; image captioning with soft attention is `striate.sequence.captioning`."""
