# Copyright (c) selfpatch_mm contributors. All rights reserved.
import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model', 'quiet_log']


def unwrap_model(runner) -> nn.Module:
    """The runner's model without its DDP/FSDP wrapper, if any."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model


@contextmanager
def quiet_log(logger: logging.Logger,
              prefixes: Sequence[str]) -> Iterator[None]:
    """Drop the records of ``logger`` whose message starts with one of
    ``prefixes`` while the block runs; every other record passes."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(tuple(prefixes))

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
