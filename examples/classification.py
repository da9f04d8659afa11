"""Sequence classification with Bidirectional recurrent layers: LSTM/GRU vs SimpleRNN.

    python examples/classification.py --quick        # seconds: what CI runs
    python examples/classification.py                # the full run recorded in RESULTS.md
    python examples/classification.py --plot examples/classification.png
    python examples/classification.py --help

The code lives in the installed package, rnnfast/tasks/classification.py, so that
`python -m rnnfast demo --task classification` runs it too.
"""

import sys

from rnnfast.tasks.classification import main

if __name__ == "__main__":
    sys.exit(main())
