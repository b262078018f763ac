"""Attributing a Ray Dataset that outgrows one machine: a callable class for
``Dataset.map_batches``. Each actor loads the model once, in the actor (it is never pickled),
and adds ``tokens``, ``scores`` and ``target_score`` columns::

    import ray
    import gradlens.ray

    ds = ray.data.read_parquet("s3://bucket/texts.parquet")
    out = ds.map_batches(
        gradlens.ray.Attributor,
        fn_constructor_kwargs={"model": "/models/smollm2.gguf", "method": "attnlrp",
                               "device": "cuda"},
        concurrency=8,       # actors, each with the model loaded once
        num_gpus=1,          # per actor
        batch_size=64,       # texts per call
    )
    out.write_parquet("s3://bucket/attributions")

A record's result is exactly what ``model.attribute(text)`` gives for it alone.
"""

import numpy as np

import gradlens


class Attributor:
    """``map_batches`` UDF: attributes the ``text_column`` of each batch with ``method`` and
    ``options`` (as ``Model.attribute`` takes them)."""

    def __init__(self, model, method="integrated-gradients", text_column="text", device="cpu",
                 weights="stored", **options):
        self.model = gradlens.load(model, device=device, weights=weights)
        self.method = method
        self.text_column = text_column
        self.options = options

    def __call__(self, batch):
        texts = [str(t) for t in batch[self.text_column]]
        results = self.model.attribute(texts, method=self.method, **self.options)
        out = dict(batch)
        out["tokens"] = _column([list(r.tokens) for r in results])
        out["scores"] = _column([r.scores.tolist() for r in results])
        out["target_score"] = np.array([r.target_score for r in results], dtype=np.float32)
        return out


def _column(rows):
    """A column of lists (one per record, of any lengths) as a 1-D object array."""
    column = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        column[i] = row
    return column
