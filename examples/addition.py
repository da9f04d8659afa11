"""A functional encoder-decoder (encoder states -> decoder initial_state) learning to add
numbers written as text.

    python examples/addition.py --quick        # seconds: what CI runs
    python examples/addition.py                # the full run recorded in RESULTS.md
    python examples/addition.py --help

The code lives in the installed package, rnnfast/tasks/addition.py, so that
`python -m rnnfast demo --task addition` runs it too.
"""

import sys

from rnnfast.tasks.addition import main

if __name__ == "__main__":
    sys.exit(main())
