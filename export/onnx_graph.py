"""A small ONNX graph builder: nodes with unique names, cached constants, subgraphs (If branches) that read
the outer graph's values. The image model's preprocessing graph is written with it."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DOUBLE, FLOAT, INT64, UINT8 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8


class Graph:
    """Nodes being added to one graph. Values are names; every name starts with ``prefix``, so the graph
    merges with another (the network's) without clashes. A subgraph shares its root's name counter and
    constants (ONNX subgraphs may read the values of the graphs around them)."""

    def __init__(self, prefix: str, root: Graph | None = None) -> None:
        self.prefix = prefix
        self.root = root or self
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.NodeProto] = []  # the root's, placed before every node
        self._cache: dict[tuple[Any, ...], str] = {}
        self._count = 0

    def name(self, hint: str) -> str:
        root = self.root
        root._count += 1
        return f"{root.prefix}{hint}_{root._count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> Any:
        """Add an ``op_type`` node; its output name (or a list of ``outputs`` names)."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value: Any, dtype: int) -> str:
        """A constant tensor (a Python number is a scalar), made once per value."""
        array = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
        key = (dtype, array.shape, array.tobytes())
        root = self.root
        if key not in root._cache:
            name = self.name("const")
            tensor = numpy_helper.from_array(array, name)
            root.constants.append(helper.make_node("Constant", [], [name], name=name, value=tensor))
            root._cache[key] = name
        return root._cache[key]

    def i64(self, value: Any) -> str:
        return self.const(value, INT64)

    def f64(self, value: Any) -> str:
        return self.const(value, DOUBLE)

    def subgraph(self) -> Graph:
        return Graph(self.prefix, self.root)

    def to_graph(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[tuple[str, int]]
    ) -> onnx.GraphProto:
        """This subgraph as a GraphProto whose outputs are the ``(value, element type)`` pairs."""
        # Identity: a subgraph output must be produced inside it, even when it is an outer value.
        finals = []
        for out, dtype in outputs:
            final = self.name("out")
            self.nodes.append(helper.make_node("Identity", [out], [final], name=final))
            finals.append(helper.make_tensor_value_info(final, dtype, None))
        return helper.make_graph(self.nodes, name, inputs, finals)
