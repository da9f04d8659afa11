"""A functional seq2seq model with Attention reversing strings of digits (against the same
model without Attention).

    python examples/attention.py --quick        # seconds: what CI runs
    python examples/attention.py                # the full run recorded in RESULTS.md
    python examples/attention.py --help

The code lives in the installed package, rnnfast/tasks/attention.py, so that
`python -m rnnfast demo --task attention` runs it too.
"""

import sys

from rnnfast.tasks.attention import main

if __name__ == "__main__":
    sys.exit(main())
