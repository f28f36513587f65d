"""A model the in-process Runner tests of this folder share. The tests
import it as ``toy_model`` (conftest.py puts this folder on ``sys.path``;
pytest runs with ``--import-mode=importlib``, which adds no test folder)."""
from mmengine.model import BaseModel
from torch import nn


class ToyModel(BaseModel):
    """A linear layer behind dropout: training draws from torch's RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(self.drop(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out
