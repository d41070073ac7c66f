"""Graph surgery on ONNX models: which nodes stay float32 in a variant, and tidying the float16 converter's output."""

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
