"""load_dataset and the registry of named sources (being written)."""


def load_dataset(name_or_path, split="train", root=None):
    raise NotImplementedError
