"""Classical baselines against their peers, each comparison in one run on the same machine.

    python benchmarks/classic.py                       # knn, nca, linear
    python benchmarks/classic.py --sections knn        # some of them
    python benchmarks/classic.py --quick               # subsets: a smoke test

knn: exact 1-NN on CIFAR-10 (50,000 × 10,000 × 3,072) against scikit-learn's brute force and
faiss-cpu IndexFlatL2. nca: against scikit-learn's NeighborhoodComponentsAnalysis on an MNIST
subset, and the 5-NN raw vs NCA-32 table on full MNIST. linear: SVM and softmax against
scikit-learn on CIFAR-10 pixels. Needs `pip install -e .[bench]` for faiss-cpu.
"""

from __future__ import annotations

import importlib

from _common import RESULTS, print_machine, run_sections

MODULES = {"knn": "_classic_knn", "nca": "_classic_nca", "linear": "_classic_linear"}
# Imported when chosen: each section pulls in its own peers (faiss, scikit-learn).
SECTIONS = {
    name: (lambda quick, module=module: importlib.import_module(module).bench(quick))
    for name, module in MODULES.items()
}


def main(argv: list[str] | None = None) -> None:
    run_sections(__doc__, SECTIONS, argv, record=RESULTS / "classic.jsonl")


if __name__ == "__main__":
    print_machine()
    main()
