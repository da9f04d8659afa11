"""Time-series forecasting on the two-sine series: the textbook chapter's table.

    python examples/forecasting.py --quick        # seconds: what CI runs
    python examples/forecasting.py                # the full run recorded in RESULTS.md
    python examples/forecasting.py --plot examples/forecasting.png
    python examples/forecasting.py --help

The code lives in the installed package, rnnfast/tasks/forecasting.py, so that
`python -m rnnfast demo --task forecasting` runs it too.
"""

import sys

from rnnfast.tasks.forecasting import main

if __name__ == "__main__":
    sys.exit(main())
