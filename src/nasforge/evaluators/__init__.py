"""Evaluators: one interface that scores architectures."""

from nasforge.evaluators.base import EVALUATORS, Evaluator, Result, evaluate_safely
from nasforge.evaluators.pbt import MemberTrainer, PBTClassifierTrainer
from nasforge.evaluators.pbt_gan import PBTGANTrainer
from nasforge.evaluators.pbt_rl import PBTRLTrainer
from nasforge.evaluators.table import TabularEvaluator
from nasforge.evaluators.train import TrainEvaluator

__all__ = [
    "EVALUATORS",
    "Evaluator",
    "MemberTrainer",
    "PBTClassifierTrainer",
    "PBTGANTrainer",
    "PBTRLTrainer",
    "Result",
    "TabularEvaluator",
    "TrainEvaluator",
    "evaluate_safely",
]
