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

import argparse
import importlib

import torch

from _table import print_table

SECTIONS = {"knn": "_classic_knn", "nca": "_classic_nca", "linear": "_classic_linear"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--quick", action="store_true", help="subsets: a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    rows: list[dict] = []
    for name in names:
        rows += importlib.import_module(SECTIONS[name]).bench(args.quick)
    print_table(rows)


if __name__ == "__main__":
    main()
