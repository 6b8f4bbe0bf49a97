import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def model_zoo():
    from models import zoo

    return zoo()


@pytest.fixture(scope="module")
def one_thread():
    """Modules of tiny-model tests opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``: a second
    intra-op thread buys nothing on such models, and on an oversubscribed machine it made them 20-50x slower
    (threads spin-waiting for a core). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
