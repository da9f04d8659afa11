"""The four kinds of task that teach recurrent networks, as runnable examples.

Each module has ``run(quick=..., ...)`` returning its results and ``main(argv)``
(the command line of ``examples/<name>.py``):

- ``forecasting``: the two-sine time series, the textbook chapter's table;
- ``char_rnn``: a character-level language model and text generation;
- ``classification``: sequence classification with a long-range dependency;
- ``seq2seq``: an encoder-decoder learning to add numbers written as text;
- ``addition``: the same task as a functional model wired with states;
- ``attention``: a functional seq2seq model with Attention reversing digit strings.

``python -m rnnfast demo --task NAME`` runs one in its quick form.
"""

import importlib

TASKS = ("forecasting", "char_rnn", "classification", "seq2seq", "addition", "attention")


def get(name):
    """The task's module."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["TASKS", "get"]
