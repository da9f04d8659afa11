"""Character-level language model (stateful LSTM and GRU) and text generation.

    python examples/char_rnn.py --quick        # seconds: what CI runs
    python examples/char_rnn.py                # the full run recorded in RESULTS.md
    python examples/char_rnn.py --text FILE      # any UTF-8 text instead
    python examples/char_rnn.py --help

The code lives in the installed package, rnnfast/tasks/char_rnn.py, so that
`python -m rnnfast demo --task char_rnn` runs it too.
"""

import sys

from rnnfast.tasks.char_rnn import main

if __name__ == "__main__":
    sys.exit(main())
