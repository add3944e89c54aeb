"""Kit assembly learned from disassembly: Form2Fit at small scale (Zakka et al. 2019, "Form2Fit:
Learning Shape Priors for Generalizable Assembly from Disassembly").

A 2-D top-down simulator (`sim`: polygon pieces, a kit plate with cut-outs, heightmaps, an
analytic suction model), self-supervised data by trial-and-error disassembly reversed in time
(`data`), the suction, place and two-stream matching networks (`networks`) trained as engine
Tasks (`tasks`), the planner and assembly evaluation (`policy`), pictures (`figures`) and the
end-to-end jobs behind `striate assembly` (`run`).

    from striate.assembly import generate_data, train_networks, evaluate_run
    generate_data("runs/asm-data", kits=8, episodes=12)
    train_networks("runs/asm-data", out="runs/asm", steps=300)
    evaluate_run("runs/asm")["results"]
"""

from striate.assembly.data import assembly_datasets, disassemble, replay, reverse
from striate.assembly.networks import DenseNet, MatchingNet
from striate.assembly.policy import Networks, assemble, plan, success_rates
from striate.assembly.run import evaluate_run, generate_data, load_networks, train_networks
from striate.assembly.sim import Kit, State, heightmap, make_kit, suction_piece
from striate.assembly.tasks import Heatmap, Matching, contrastive_loss

__all__ = [
    "DenseNet",
    "Heatmap",
    "Kit",
    "Matching",
    "MatchingNet",
    "Networks",
    "State",
    "assemble",
    "assembly_datasets",
    "contrastive_loss",
    "disassemble",
    "evaluate_run",
    "generate_data",
    "heightmap",
    "load_networks",
    "make_kit",
    "plan",
    "replay",
    "reverse",
    "success_rates",
    "suction_piece",
    "train_networks",
]
