"""Coalescing: requests waiting while a batch computes are scored together, each gets its own
answer, a failing batch fails every caller (nobody waits forever), and a batch scores exactly as
the requests scored one by one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import pytest

from serving.batching import Coalescer
from serving.model_watcher import ModelWatcher, ServingModel
from serving.online_features import OnlineHistory
from serving.reasons import reference_values
from serving.scoring import Scorer
from tests.unit.test_serving_scoring import SHORT, Log, small_real_pipeline


def test_waiting_items_form_one_batch_and_answers_keep_their_order() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def handle(items):
        batches.append(list(items))
        release.wait(5)  # the first batch holds the thread while the others arrive
        return [i * 10 for i in items]

    coalescer = Coalescer(handle, max_batch=4, name="t")
    first = coalescer.submit(0)
    while not batches:
        time.sleep(0.001)
    futures = [coalescer.submit(i) for i in range(1, 10)]
    release.set()
    wait([first, *futures], timeout=5)
    assert [f.result() for f in [first, *futures]] == [i * 10 for i in range(10)]
    assert batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert (coalescer.batches, coalescer.items) == (4, 10)
    coalescer.close()


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    def handle(items):
        if "bad" in items:
            raise ValueError("cannot score this batch")
        return [len(i) for i in items]

    coalescer = Coalescer(handle, max_batch=1, name="t")
    bad, good = coalescer.submit("bad"), coalescer.submit("good")
    with pytest.raises(ValueError, match="cannot score this batch"):
        bad.result(timeout=5)
    assert good.result(timeout=5) == 4
    coalescer.close()


def test_a_handler_answering_the_wrong_number_of_results_fails_the_batch() -> None:
    coalescer = Coalescer(lambda items: [], max_batch=8, name="t")
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        coalescer.submit(1).result(timeout=5)
    coalescer.close()
    with pytest.raises(RuntimeError, match="closed"):
        coalescer.submit(2)


def test_a_batch_scores_as_the_requests_scored_one_by_one() -> None:
    pipeline, x = small_real_pipeline()
    model = ServingModel("real", "3", pipeline, reference=reference_values(x))
    known = {"hist_n_solicitacoes": 4.0, "hist_valor_medio": 80_000.0, "serasa_score": 420,
             "hist_inadimplencias_anteriores": 2.0, "hist_desfechos_conhecidos": 3.0,
             "cultura_principal": "CAFE"}  # fmt: skip
    watcher = ModelWatcher("real", lambda: "3", lambda v: model, 1.0)
    watcher.poll()
    scorer = Scorer(watcher, OnlineHistory(lambda ids: [known if i == "p-1" else None for i in ids],
                                           1.0), Log(), 0.10, 0.30)  # fmt: skip
    bodies = [
        {**SHORT, "valor_solicitado": amount, "id_proponente": who}
        for amount in (15_000, 90_000, 400_000)
        for who in ("p-1", "p-2")
    ]
    one_by_one = [scorer.score(b) for b in bodies]
    together = scorer.score_parsed([scorer.parse(b) for b in bodies])
    assert len(together) == len(bodies) == 6

    def essence(answer):
        keep = ("id_proponente", "probabilidade_inadimplencia", "decisao", "motivos",
                "proponente_conhecido", "model_version")  # fmt: skip
        return {k: answer[k] for k in keep}

    assert [essence(a) for a in together] == [essence(a) for a in one_by_one]
    assert {a["proponente_conhecido"] for a in together} == {True, False}
    assert len({a["decisao"] for a in together}) > 1  # the batch is not one answer repeated
