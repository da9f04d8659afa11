"""Splits a perf profile of benchmarks/w1_kernels.cc into the phases of a time step.

    W1MODE=train perf record --call-graph dwarf,8192 -F 4000 -o lstm.data ./w1_kernels 1 1000 LSTM
    python benchmarks/perf_phases.py lstm.data ./w1_kernels

Each sample goes to the first phase found walking up from its leaf: a function
(inlined ones too, which perf resolves from -g), or, for a frame that returns
into a cell's time-loop lambda, the Sequence method called on that source line
(addr2line). What is left in the lambda is the cell's own gate pass.
"""
import re, subprocess, sys, collections
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True, text=True).stdout
samples = [s for s in out.split("\n\n") if s.strip()]
GEMM = ("RowBlocks", "MicroKernel", "SmallGemm", "Columns", "GemmPacked", "rnnfast::detail::Gemm<", "general_matrix")
PHASES = [  # (frame name pattern, label), first match walking up from the leaf
  ("RecurrentProduct", "fwd: recurrent GEMM"),
  ("ProjectInputs", "fwd: input projection (pre-loop GEMM)"),
  ("PrepareInputs", "fwd: prologue (x copy, state, R copy)"),
  ("ActivateWholeRows", "fwd: gate pass"),
  ("RecurrentGrad", "bwd: dh GEMM (dG R^T)"),
  ("StepWeightGrads", "bwd: dW/dR/db streaming"),
  ("StepInputGrads", "bwd: dx GEMM"),
  ("ParameterGrads", "bwd: post-loop GEMMs"),
  ("PrepareBackward", "bwd: prologue (R^T, W^T, zeroing)"),
  ("Epilogue", "bwd: epilogue"),
  ("CarryMasked", "bwd: other"),
  ("Impl<float>::Backward", "bwd: gate-gradient pass"),
  ("Impl<float>::Forward", "fwd: gate pass"),
  ("ParallelRun", "thread pool"), ("Pool::", "thread pool"), ("SpinBarrier", "thread pool"),
  ("Begin", "setup"), ("Layer<", "harness"), ("main", "harness"),
]
binary = sys.argv[2]
_lines = {}
def line_text(addr):
    if addr not in _lines:
        r = subprocess.run(["addr2line", "-e", binary, hex(addr - 1)], capture_output=True, text=True).stdout.strip()
        f, _, n = r.rpartition(":")
        try: _lines[addr] = open(f).read().splitlines()[int(n.split()[0]) - 1]
        except Exception: _lines[addr] = ""
    return _lines[addr]
cnt = collections.Counter()
for s in samples:
    frames = [l.strip() for l in s.splitlines()[1:] if l.strip()] if s.splitlines()[0].count("cpu-clock") else [l.strip() for l in s.splitlines() if l.strip()]
    names = [re.sub(r"^[0-9a-f]+ ", "", f) for f in frames]
    addrs = [int(f.split()[0], 16) for f in frames]
    label = None
    for i, n in enumerate(names):
        if i > 0 and "lambda" in n and "(inlined)" not in n and "Impl<float>" in n:
            t = line_text(addrs[i])
            for pat, lab in PHASES:
                if pat + "(" in t: label = lab; break
            if label: break
        for pat, lab in PHASES:
            if pat in n:
                label = lab; break
        if label: break
    if label is None:
        label = "other: " + (names[0][:60] if names else "?")
    cnt[label] += 1
tot = sum(cnt.values())
for k, v in sorted(cnt.items(), key=lambda kv: -kv[1]):
    if v / tot > 0.004: print(f"{100*v/tot:6.1f}%  {k}")
