"""Encoder-decoder (LSTM -> RepeatVector -> LSTM) learning to add numbers written as text.

    python examples/seq2seq.py --quick        # seconds: what CI runs
    python examples/seq2seq.py                # the full run recorded in RESULTS.md
    python examples/seq2seq.py --digits 2
    python examples/seq2seq.py --help

The code lives in the installed package, rnnfast/tasks/seq2seq.py, so that
`python -m rnnfast demo --task seq2seq` runs it too.
"""

import sys

from rnnfast.tasks.seq2seq import main

if __name__ == "__main__":
    sys.exit(main())
