"""Both embedders through the same checks (the Embedder contract), and the float model against the int8 one: the
same all-MiniLM-L6-v2, so their vectors agree closely and rank the same passage first."""

from __future__ import annotations

import numpy as np
import pytest

from rag.interfaces import Embedder

pytestmark = pytest.mark.integration

TEXTS = [
    "How many troops did China send to the exercise?",
    "China has sent more than 2,000 troops to take part in strategic military exercises in Russia.",
    "The Korvath bridge over the Senna river is 412 metres long.",
    "Fresh food arrives at the station twice a year.",
]


@pytest.fixture(params=["minilm-int8", "minilm"])
def any_embedder(request, embedder, st_embedder) -> Embedder:
    return embedder if request.param == "minilm-int8" else st_embedder


def test_the_embedder_contract(any_embedder: Embedder) -> None:
    assert isinstance(any_embedder, Embedder) and any_embedder.dim == 384 and any_embedder.name.startswith("minilm")
    vecs = np.asarray(any_embedder.embed(TEXTS))
    assert vecs.shape == (len(TEXTS), 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3), "L2-normalised"
    assert np.asarray(any_embedder.embed([])).shape == (0, 384)
    sims = vecs[1:] @ vecs[0]
    assert int(np.argmax(sims)) == 0, "the passage that answers the question is the most similar"
    again = np.asarray(any_embedder.embed(TEXTS[:1]))
    assert np.allclose(again[0], vecs[0], atol=1e-5), "a text's vector does not depend on its batch"


def test_float_and_int8_models_agree(embedder, st_embedder) -> None:
    a, b = np.asarray(embedder.embed(TEXTS)), np.asarray(st_embedder.embed(TEXTS))
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.97, cos


def test_float_and_int8_models_rank_passages_alike(embedder, st_embedder) -> None:
    """The ``minilm`` embedder (sentence-transformers, torch) ranks passages for a question as the default does."""
    question = "How long is the bridge over the Senna river?"
    passages = [  # most relevant first
        "The Korvath bridge over the Senna river is 412 metres long.",
        "A new bridge across the Senna is planned for 2030.",
        "The Senna river floods the valley every spring.",
        "Bridges in the region are inspected every five years.",
        "Fresh food arrives at the station twice a year.",
    ]
    orders = []
    for e in (embedder, st_embedder):
        q = np.asarray(e.embed([question]))[0]
        vecs = np.asarray(e.embed(passages))
        assert vecs.shape == (len(passages), 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
        orders.append(np.argsort(-(vecs @ q)).tolist())
    assert st_embedder.name == "minilm" and embedder.name == "minilm-int8"
    assert orders[0] == orders[1] == list(range(len(passages))), orders
