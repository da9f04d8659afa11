"""model.summary(): Keras 3's table (utils/summary_utils.py), with the
"Connected to" column for functional models."""

from __future__ import annotations

import shutil


def _shape_text(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return str(tuple(shape))


def _wrap(text, width, sep=" "):
    """Lines of at most `width` characters, broken after `sep` where possible."""
    lines, current = [], ""
    for word in text.split(sep):
        piece = word if not current else sep + word
        if current and len(current) + len(piece.rstrip()) > width:
            lines.append(current.rstrip())
            current = word
        else:
            current += piece
        while len(current) > width:
            lines.append(current[:width])
            current = current[width:]
    lines.append(current.rstrip())
    return lines


def _output_shape(model, layer):
    """A layer's output shape(s), from its node in this model when it has one."""
    if hasattr(model, "_node_set"):
        nodes = [n for n in layer._inbound_nodes if n in model._node_set]
        if nodes:
            shapes = [t.shape for t in nodes[-1].outputs]
            return shapes[0] if len(shapes) == 1 and \
                not isinstance(nodes[-1].output_structure, list) else shapes
    return None


def _connections(model, layer):
    from ..layers.node import own_node_index

    own = model._node_set
    links = []
    for node in layer._inbound_nodes:
        if node not in own or node.is_input:
            continue
        for t in node.input_tensors + node.kwarg_tensors:
            src, _, index = t._keras_history
            links.append(f"{src.name}[{own_node_index(t.node, own)}][{index}]")
    return ", ".join(links) if links else "-"


def print_summary(model, line_length=None, print_fn=None, show_trainable=False):
    print_fn = print_fn or print
    functional = type(model).__name__ != "Sequential"
    # Keras's widths: 88 (108 with "Connected to"), at most the terminal's less 4.
    width = line_length or min(108 if functional else 88,
                               shutil.get_terminal_size().columns - 4)
    positions = [0.3, 0.56, 0.74, 1.0] if functional else [0.45, 0.80, 1.0]
    cols, start = [], 0
    for pos in positions:
        end = int(pos * width)
        cols.append(max(end - start - 3, 4))  # 3: the border and the cell's padding
        start = end
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    aligns = ["<", "<", ">", "<"]
    rows = []
    layers = model.layers
    shape = getattr(model, "input_shape", None) if not functional else None
    for layer in layers:
        name = f"{layer.name} ({type(layer).__name__})"
        out = _output_shape(model, layer) if model.built else None
        if out is None and not functional and shape is not None:
            shape = layer.compute_output_shape(shape)
            out = shape
        out_text = "?" if out is None else _shape_text(out)
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        cells = [name, out_text, params]
        if functional:
            cells.append(_connections(model, layer))
        rows.append(cells)

    def line(left, mid, right, fill):
        return left + mid.join(fill * (c + 2) for c in cols) + right

    def row(cells, sep="│"):
        wrapped = [_wrap(c, w) for c, w in zip(cells, cols)]
        height = max(len(w) for w in wrapped)
        out = []
        for k in range(height):
            parts = [f" {(w[k] if k < len(w) else ''):{a}{cw}} "
                     for w, a, cw in zip(wrapped, aligns, cols)]
            out.append(sep + sep.join(parts) + sep)
        return out

    lines = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━")]
    lines += row(headers, "┃")
    lines.append(line("┡", "╇", "┩", "━"))
    for i, cells in enumerate(rows):
        lines += row(cells)
        lines.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    if not rows:
        lines.append(line("└", "┴", "┘", "─"))

    def size(n):
        b = 4 * n
        for unit in ("B", "KB", "MB", "GB"):
            if b < 1024 or unit == "GB":
                return f"{b:.2f} {unit}"
            b /= 1024

    total = sum(v.value.size for v in model.weights) if model.built else 0
    trainable = sum(v.value.size for v in model.trainable_weights) if model.built else 0
    lines += [f" Total params: {total:,} ({size(total)})",
              f" Trainable params: {trainable:,} ({size(trainable)})",
              f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})"]
    for text in lines:
        print_fn(text)
