"""Graph surgery on ONNX models: which nodes stay float32 in a variant, folding per-channel affine ops into the
convolution before them, and tidying the float16 converter's output."""

from __future__ import annotations

WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
OUTPUT_OPS = ("Softmax",)  # quantized to uint8, probabilities would come in steps of 1/255 and not sum to 1


def preprocessing_nodes(graph) -> list[str]:
    """Names of the nodes computed from the input before any weighted op (the z-score and reshapes).

    A node belongs to the preprocessing when it is not a weighted op (``WEIGHTED_OPS``)
    and every input that is not an initializer comes from the graph input or from
    another preprocessing node. ONNX graphs are stored in topological order.
    """
    initializers = {i.name for i in graph.initializer}
    reachable = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        inputs = [name for name in node.input if name and name not in initializers]
        if node.op_type not in WEIGHTED_OPS and all(name in reachable for name in inputs):
            names.append(node.name)
            reachable.update(node.output)
    return names


def float32_nodes(graph) -> list[str]:
    """The nodes every variant keeps in float32: the preprocessing and the output softmax."""
    return [*preprocessing_nodes(graph), *(n.name for n in graph.node if n.op_type in OUTPUT_OPS)]


def input_layer_nodes(graph) -> list[str]:
    """Names of the weighted ops (``WEIGHTED_OPS``) that see the preprocessed input: the first layer(s).

    A weighted op whose every input that is not an initializer is the graph input or
    the output of a preprocessing node (``preprocessing_nodes``): the stem
    convolution of resnet1d and resnet18_2d (several for a backbone whose first
    block convolves the input in parallel branches).
    """
    initializers = {i.name for i in graph.initializer}
    pre = set(preprocessing_nodes(graph))
    reachable = {i.name for i in graph.input} | {o for n in graph.node if n.name in pre for o in n.output}
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS
            and all(name in reachable for name in n.input if name and name not in initializers)]


def output_layer_nodes(graph) -> list[str]:
    """Names of the weighted ops from which a graph output is reached through no other weighted op: the classifier.

    Walked back from the graph outputs through the producers of every input, stopping at
    the first weighted op on each path (the logits ``Gemm``/``MatMul``, whatever dense
    layers come before it).
    """
    producer = {out: node for node in graph.node for out in node.output}
    found, seen = [], set()
    pending = [o.name for o in graph.output]
    while pending:
        node = producer.get(pending.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in WEIGHTED_OPS:
            found.append(node.name)
        else:
            pending.extend(name for name in node.input if name)
    order = {node.name: i for i, node in enumerate(graph.node)}
    return sorted(found, key=order.get)


def fold_channel_affine(graph) -> int:
    """Folds per-output-channel ``Mul``/``Add`` constants after a ``Conv`` into its weight and bias, in place.

    Keras' Conv1D reaches ONNX as ``Unsqueeze -> Conv (2-D) -> Squeeze``, so the
    batch normalisation (``Mul`` by ``gamma / sigma``, ``Add`` of ``beta - mean *
    gamma / sigma``) and a Conv1D bias come after the ``Squeeze`` and neither
    tf2onnx nor onnxruntime folds them (they do for 2-D convolutions). Quantized,
    each of them is one more rounding to 8 bits. A chain ``Conv [-> Squeeze of
    spatial axes] -> Mul/Add ...`` whose every link has one consumer and whose
    constants broadcast along the output channels only becomes ``Conv(W * s,
    b * s + t) [-> Squeeze]``: the same function (float rounding apart).

    Returns:
      The number of convolutions that absorbed at least one op.
    """
    import numpy as np
    from onnx import numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def sole_consumer(name):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in outputs else None

    def constant(name):
        return numpy_helper.to_array(initializers[name]) if name in initializers else None

    removed, rename, folded = set(), {}, 0
    for conv in graph.node:
        weight = constant(conv.input[1]) if conv.op_type == "Conv" and len(conv.input) > 1 else None
        if weight is None or weight.dtype != np.float32:
            continue
        channels, rank = weight.shape[0], weight.ndim  # the output (N, C, spatial...) has the weight's rank
        bias = constant(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(channels, np.float32)
        if bias is None:
            continue
        tail, nxt = conv.output[0], sole_consumer(conv.output[0])
        if nxt is not None and nxt.op_type == "Squeeze":
            axes = constant(nxt.input[1]) if len(nxt.input) > 1 else next(
                (np.array(a.ints) for a in nxt.attribute if a.name == "axes"), None)
            if axes is None or any(int(a) % rank in (0, 1) for a in np.atleast_1d(axes)):
                continue
            rank -= len(np.atleast_1d(axes))
            tail, nxt = nxt.output[0], sole_consumer(nxt.output[0])
        scale, shift, chain, feed = np.ones(channels, np.float64), np.zeros(channels, np.float64), [], tail
        while nxt is not None and nxt.op_type in ("Mul", "Add") and tail in nxt.input and nxt.output[0] not in outputs:
            other = [name for name in nxt.input if name != tail]
            value = constant(other[0]) if len(other) == 1 else None
            if value is None or value.dtype != np.float32 or value.ndim > rank:
                break
            shape = (1,) * (rank - value.ndim) + value.shape
            if any(d != 1 for k, d in enumerate(shape) if k != 1) or shape[1] not in (1, channels):
                break
            value = np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))
            if nxt.op_type == "Mul":
                scale, shift = scale * value, shift * value
            else:
                shift = shift + value
            chain.append(nxt)
            tail, nxt = nxt.output[0], sole_consumer(nxt.output[0])
        if not chain:
            continue
        new_weight = (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(np.float32)
        new_bias = (bias * scale + shift).astype(np.float32)
        names = (f"{conv.name}/folded_weight", f"{conv.name}/folded_bias")
        graph.initializer.extend([numpy_helper.from_array(new_weight, names[0]),
                                  numpy_helper.from_array(new_bias, names[1])])
        conv.input[1] = names[0]
        if len(conv.input) > 2:
            conv.input[2] = names[1]
        else:
            conv.input.append(names[1])
        rename[chain[-1].output[0]] = feed  # what consumed the chain now takes the (squeezed) conv output
        removed.update(id(node) for node in chain)
        folded += 1
    if not folded:
        return 0
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
    _replace_nodes(graph, [node for node in graph.node if id(node) not in removed])
    used = {name for node in graph.node for name in node.input}
    produced = {name for node in graph.node for name in node.output}
    _replace_repeated(graph.initializer, [i for i in graph.initializer if i.name in used])
    _replace_repeated(graph.value_info, [v for v in graph.value_info if v.name in produced])
    return folded


def _replace_repeated(field, items) -> None:
    """Makes copies of ``items`` (which may belong to ``field``) the contents of the repeated protobuf ``field``."""
    copies = []
    for item in items:
        copies.append(type(item)())
        copies[-1].CopyFrom(item)
    del field[:]
    field.extend(copies)


def _is_cast_to(node, elem_type: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == elem_type for a in node.attribute)


def drop_float16_round_trips(graph) -> None:
    """Removes the casts float32 -> float16 -> float32 around and between float32 nodes, in place.

    ``convert_float_to_float16`` casts the graph input to float16 and casts every
    output of a blocked (float32) node to float16 and back to float32 before
    the next blocked node or the graph output: the raw signal, the z-score's
    intermediates and the probabilities would be rounded to float16. Each such
    pair is bypassed (the float32 value goes on unrounded; a graph output keeps
    its name and cast, now float32 -> float32) and the casts left without
    consumers are removed.
    """
    from onnx import TensorProto

    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    bypass = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if _is_cast_to(node, TensorProto.FLOAT) and first is not None and _is_cast_to(first, TensorProto.FLOAT16):
            if node.output[0] in outputs:
                node.input[0] = first.input[0]
            else:
                bypass[node.output[0]] = first.input[0]
    for node in graph.node:
        node.input[:] = [bypass.get(name, name) for name in node.input]
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        kept = [n for n in graph.node if not (n.op_type == "Cast" and not set(n.output) & used)]
        if len(kept) == len(graph.node):
            return
        _replace_nodes(graph, kept)


def _replace_nodes(graph, nodes) -> None:
    """Makes ``nodes`` (copied first: they may belong to ``graph``) the nodes of ``graph``."""
    import onnx

    copies = []
    for node in nodes:
        copies.append(onnx.NodeProto())
        copies[-1].CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def sort_topologically(graph) -> None:
    """Orders the nodes of ``graph`` so that each comes after the producers of its inputs (ONNX requires it;
    ``convert_float_to_float16`` appends its casts at the end)."""
    available = {"", *(i.name for i in graph.input), *(i.name for i in graph.initializer)}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError(f"ONNX graph {graph.name!r}: a cycle or an undefined input at node {pending[0].name!r}")
        ordered += ready
        available.update(name for node in ready for name in node.output)
        ready_ids = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in ready_ids]
    _replace_nodes(graph, ordered)
