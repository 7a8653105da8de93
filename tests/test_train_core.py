"The fit loop's core stays small and knows no callback: callbacks are reached by name, never through the trainer."
import inspect

import pytest
import torch
from torch import nn

from latentgen.train import Trainer

# the core: the loop (fit -> epoch -> batch -> step), the events, and the stop/save requests callbacks make
CORE = ("fit", "_epoch", "_batch", "_step", "_event", "_flush", "request_stop", "request_save")


def test_the_core_of_the_loop_is_under_200_lines():
    lines = {m: len(inspect.getsource(getattr(Trainer, m)).splitlines()) for m in CORE}
    assert sum(lines.values()) < 200, lines


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def loss(self, batch):
        return {"loss": self.lin(batch[0]).pow(2).mean()}


def test_callbacks_are_reached_by_name_only():
    assert "__getattr__" not in vars(Trainer)
    t = Trainer(Tiny(), ema_decay=0.5, progress=False, device="cpu")
    assert isinstance(t.cb("ema").model, torch.optim.swa_utils.AveragedModel)
    with pytest.raises(AttributeError):
        t.ema_model
    with pytest.raises(KeyError, match=r"no callback named 'emma'; this trainer has \['checkpoint', 'clip', "):
        t.cb("emma")
