"""Command line: ``python -m rnnfast demo [options]`` (also ``rnnfast demo``),
``rnnfast demo --task NAME`` and ``rnnfast info``."""

import sys

USAGE = """\
usage: rnnfast demo [--cell {gru,lstm,simple_rnn}] [--epochs N] [--units N] [--batch-size N]
                    [--seed N]
       rnnfast demo --task {forecasting,char_rnn,classification,seq2seq,addition,attention} [--full] [task options]
       rnnfast info

demo --task NAME runs that example task in its quick form (seconds), or in full
with --full; 'rnnfast demo --task NAME --help' lists the task's options."""


def _pop_task(args):
    """(task name or None, the other arguments); accepts --task NAME and --task=NAME."""
    for i, arg in enumerate(args):
        if arg == "--task":
            if i + 1 == len(args):
                return "", args[:i]
            return args[i + 1], args[:i] + args[i + 2:]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1:]
    return None, args


def _run_task(name, args) -> int:
    from . import tasks

    if name not in tasks.TASKS:
        print(f"rnnfast demo: error: --task must be one of {', '.join(tasks.TASKS)}"
              f"{f', got {name!r}' if name else ''}", file=sys.stderr)
        return 2
    full = "--full" in args
    args = [a for a in args if a != "--full"]
    if "--quick" in args:
        full = False
        args = [a for a in args if a != "--quick"]
    return tasks.get(name).main(args if full else ["--quick", *args],
                                prog=f"rnnfast demo --task {name}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] == "demo":
        task, rest = _pop_task(argv[1:])
        if task is not None:
            return _run_task(task, rest)
        from .demo import main as demo_main

        return demo_main(rest)
    if argv[0] == "info":
        import rnnfast

        for k, v in rnnfast.build_info().items():
            print(f"{k}: {v}")
        from . import _device

        st = _device.status()
        print(f"device: {st['device']} ({st['why']})")
        if st["gpus"]:
            print(f"gpus: {', '.join(st['gpus'])}; cublas: {st['cublas']}")
        return 0
    print(f"rnnfast: unknown command {argv[0]!r}; try 'rnnfast demo'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
