"""Names, as Keras 3 gives them (keras/src/utils/naming.py): one snake-case
rule and one counter for automatic names of layers, models and optimizers."""

from __future__ import annotations

import collections
import re

_uids: collections.defaultdict = collections.defaultdict(int)


def to_snake_case(name: str) -> str:
    """SimpleRNN -> simple_rnn, Conv1D -> conv1d, GlobalMaxPooling1D -> global_max_pooling1d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def uniquify(name: str) -> str:
    """name, name_1, name_2, ...: Keras's counter, shared by every kind of object."""
    unique = f"{name}_{_uids[name]}" if name in _uids else name
    _uids[name] += 1
    return unique


def auto_name(prefix: str) -> str:
    return uniquify(to_snake_case(prefix))


def reset_uids() -> None:
    _uids.clear()


def clear_session(free_memory=True) -> None:
    """Resets automatic names (lstm, lstm_1, ...), as keras.backend.clear_session does."""
    reset_uids()
