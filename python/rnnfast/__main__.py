"""Command line: ``python -m rnnfast demo [options]`` (also ``rnnfast demo``)."""

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: rnnfast demo [--cell {gru,lstm,simple_rnn}] [--epochs N] [--units N] "
              "[--batch-size N] [--seed N]\n       rnnfast info")
        return 0
    if argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    if argv[0] == "info":
        import rnnfast

        for k, v in rnnfast.build_info().items():
            print(f"{k}: {v}")
        return 0
    print(f"rnnfast: unknown command {argv[0]!r}; try 'rnnfast demo'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
