"""DARTS cell search space: op registry, genotypes, supernets and stand-alone networks."""

from nasforge.ops.cells import OP_SETS, OPS, make_op
from nasforge.spaces.darts.genotype import Genotype, parse_cell, parse_genotype
from nasforge.spaces.darts.space import DartsSpace
from nasforge.spaces.darts.supernet import Alphas, MixedOp, SearchCell, Supernet

__all__ = [
    "OPS",
    "OP_SETS",
    "Alphas",
    "DartsSpace",
    "Genotype",
    "MixedOp",
    "SearchCell",
    "Supernet",
    "make_op",
    "parse_cell",
    "parse_genotype",
]
