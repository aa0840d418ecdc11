"""Search spaces: architectures as frozen values, spaces as data (registered by name)."""

from nasforge.spaces.base import SPACES, Architecture, SearchSpace, make_space
from nasforge.spaces.cell import CellSpace
from nasforge.spaces.darts import DartsSpace
from nasforge.spaces.gan import GanHardSpace, GanSpace
from nasforge.spaces.genes import GeneACSpace, GeneCNNSpace, GeneMLPSpace
from nasforge.spaces.sequence import SequenceSpace
from nasforge.spaces.state_space import CNNSpace, StateSpace
from nasforge.spaces.tabular import TabularSpace

__all__ = [
    "SPACES",
    "Architecture",
    "CellSpace",
    "CNNSpace",
    "DartsSpace",
    "GanHardSpace",
    "GanSpace",
    "GeneACSpace",
    "GeneCNNSpace",
    "GeneMLPSpace",
    "SearchSpace",
    "SequenceSpace",
    "StateSpace",
    "TabularSpace",
    "make_space",
]
