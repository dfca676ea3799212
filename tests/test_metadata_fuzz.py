"""Property test (issue 10): random and mutated metadata documents, and random bytes as models, give a
valid model or one of edgeinfer's own one-line errors, never another exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeinfer import Model
from edgeinfer.errors import EdgeInferError, MetadataError
from edgeinfer.metadata import ModelMetadata
from tests.fixtures import gray_model

VALID = json.loads({p.key: p.value for p in onnx.load(str(gray_model())).metadata_props}["edgeinfer"])

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and ±inf included: json.dumps writes them as bare NaN/Infinity
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12,
)


@st.composite
def mutated_documents(draw) -> str:
    """The valid metadata with one to three nodes replaced, deleted or added, as JSON text."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        node, key = None, None
        value = doc
        while isinstance(value, (dict, list)) and value and draw(st.booleans()):
            node = value
            key = draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
            value = value[key]
        if node is None:
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[key] = draw(JSON_VALUES)
        elif action == "delete" and isinstance(node, dict):
            del node[key]
        elif isinstance(node, dict):
            node[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            node.append(draw(JSON_VALUES))
    return json.dumps(doc)


@st.composite
def corrupted_text(draw) -> str:
    text = json.dumps(VALID)
    at = draw(st.integers(0, len(text) - 1))
    return text[:at] + draw(st.text(max_size=5)) + text[at + draw(st.integers(0, 5)) :]


DOCUMENTS = mutated_documents() | corrupted_text() | st.text(max_size=200) | JSON_VALUES.map(json.dumps)


def _only_metadata_errors(text: str) -> None:
    try:
        ModelMetadata.from_json(text)
    except MetadataError as e:
        assert "\n" not in str(e) and str(e), repr(str(e))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_random_and_mutated_metadata_documents_give_only_metadata_errors(text):
    _only_metadata_errors(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_documents() | corrupted_text(), data=st.binary(max_size=300))
def test_models_with_mutated_metadata_or_random_bytes_give_only_edgeinfer_errors(tmp_path, text, data):
    proto = onnx.load(str(gray_model()))
    proto.metadata_props[0].value = text
    for path, content in ((tmp_path / "m.onnx", proto.SerializeToString()), (tmp_path / "r.onnx", data)):
        Path(path).write_bytes(content)
        try:
            Model(path)
        except EdgeInferError as e:
            assert "\n" not in str(e), repr(str(e))
