"""gradlens.ray.Attributor on a local Ray cluster: 32 texts from Parquet with 2 actors give
exactly the serial results."""

import numpy as np
import pytest

import gradlens
from conftest import tiny

ray = pytest.importorskip("ray")


def _actor_class():
    import gradlens.ray

    class WhichActor(gradlens.ray.Attributor):
        """The Attributor, each row marked with the actor (process) that attributed it."""

        def __call__(self, batch):
            import os
            out = super().__call__(batch)
            out["actor"] = np.full(len(out["target_score"]), os.getpid())
            return out

    return WhichActor


def test_two_actors_give_the_serial_results(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    WhichActor = _actor_class()
    texts = [f"Sentence number {i} is about {'cats' if i % 2 else 'dogs'} and {i * 7} things"
             for i in range(32)]
    path = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"id": list(range(32)), "text": texts}), path)
    model = tiny("tiny-llama")
    options = {"model": model, "method": "integrated-gradients", "steps": 16}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.read_parquet(str(path)).repartition(4)
        rows = ds.map_batches(WhichActor, fn_constructor_kwargs=options,
                              concurrency=2, batch_size=8, num_cpus=0.5).take_all()
    finally:
        ray.shutdown()
    assert sorted(r["id"] for r in rows) == list(range(32))
    assert len({r["actor"] for r in rows}) == 2, "both actors took batches"
    serial = gradlens.load(model)
    for row in rows:
        a = serial.attribute(texts[row["id"]], method="integrated-gradients", steps=16)
        assert list(row["tokens"]) == a.tokens
        np.testing.assert_array_equal(np.asarray(row["scores"], dtype=np.float32), a.scores)
