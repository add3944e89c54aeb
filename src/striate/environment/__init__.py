"""`striate env`: what decides speed and correctness on this machine, and where the bottleneck is.

    facts = machine_facts(runs="runs")          # versions, devices, CPU, threads, memory, disk
    report = measure(data="digits", seconds=10)   # data loading vs training, in images/s
    advice(report.data.images_per_s, report.training.images_per_s, ...)   # what to change

`facts` reads the machine, `throughput` measures the striate loaders against training steps
through the Trainer, and `advice` turns two throughputs into what to do (a pure function).
"""

from __future__ import annotations

from striate.environment.advice import Situation, advice
from striate.environment.facts import machine_facts, memory_bytes
from striate.environment.throughput import Measurement, Throughput, measure

__all__ = [
    "Measurement",
    "Situation",
    "Throughput",
    "advice",
    "machine_facts",
    "measure",
    "memory_bytes",
]
