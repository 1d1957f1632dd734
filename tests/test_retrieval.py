"""Exact cosine retrieval against brute force, and the leave-self-out rule."""

from __future__ import annotations

import numpy as np
import pytest

from b2m.reconstruct.retrieval import top_k_cosine


def brute_force(queries, corpus, k, forbidden=None):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    c = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    similarity = q.astype(np.float64) @ c.T.astype(np.float64)
    if forbidden is not None:
        similarity[forbidden] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k], np.sort(similarity, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("block_rows", [7, 100, 4096])
def test_blocked_search_equals_brute_force(block_rows):
    rng = np.random.default_rng(0)
    corpus, queries = rng.standard_normal((1000, 32)), rng.standard_normal((60, 32))
    index, score = top_k_cosine(queries, corpus, 5, block_rows=block_rows)
    expected_index, expected_score = brute_force(queries, corpus, 5)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(score, expected_score, rtol=1e-5)


def test_a_query_never_retrieves_its_own_clip():
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((200, 16))
    ids = np.array([f"clip{i}" for i in range(200)])
    queries = corpus[[3, 50, 199]] + 0.01 * rng.standard_normal((3, 16))  # each nearest to itself
    assert top_k_cosine(queries, corpus, 1)[0][:, 0].tolist() == [3, 50, 199]
    index, _ = top_k_cosine(queries, corpus, 4, corpus_ids=ids, exclude=[{i} for i in ids[[3, 50, 199]]],
                            block_rows=64)
    forbidden = np.zeros((3, 200), bool)
    forbidden[[0, 1, 2], [3, 50, 199]] = True
    np.testing.assert_array_equal(index, brute_force(queries, corpus, 4, forbidden)[0])


@pytest.mark.parametrize("block_rows", [7, 64, 4096])
def test_a_query_never_retrieves_any_of_its_excluded_items(block_rows):
    """Several ids per query (its clip and its duplicates), some of them absent from the corpus, others in
    every block: the result is brute force's with those items forbidden."""
    rng = np.random.default_rng(2)
    corpus, queries = rng.standard_normal((300, 16)), rng.standard_normal((4, 16))
    ids = np.array([f"t{i}" for i in range(300)])
    nearest = brute_force(queries, corpus, 12)[0]
    exclude = [set(ids[nearest[0, :5]]) | {"absent"}, set(), {ids[nearest[2, 0]], ids[299]}, set(ids[::7])]
    forbidden = np.zeros((4, 300), bool)
    for row, excluded in enumerate(exclude):
        forbidden[row] = np.isin(ids, list(excluded))
    index, score = top_k_cosine(queries, corpus, 6, ids, exclude, block_rows=block_rows)
    expected_index, expected_score = brute_force(queries, corpus, 6, forbidden)
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(score, expected_score, rtol=1e-5)


def test_asking_for_more_than_the_corpus_is_refused():
    with pytest.raises(ValueError, match="exceeds the 3 corpus items"):
        top_k_cosine(np.ones((1, 2)), np.eye(3, 2), 4)
    with pytest.raises(ValueError, match="exceeds the 3 corpus items"):  # two of the three excluded
        top_k_cosine(np.ones((1, 2)), np.eye(3, 2), 2, ["a", "b", "c"], [{"a", "c"}])
    with pytest.raises(TypeError, match="collection of ids"):  # a bare id would be read as its characters
        top_k_cosine(np.ones((1, 2)), np.eye(3, 2), 1, ["a", "b", "c"], ["a"])
