"""Evaluators: one interface that scores architectures."""

from nasforge.evaluators.base import EVALUATORS, Evaluator, Result, evaluate_safely
from nasforge.evaluators.train import TrainEvaluator

__all__ = ["EVALUATORS", "Evaluator", "Result", "TrainEvaluator", "evaluate_safely"]
