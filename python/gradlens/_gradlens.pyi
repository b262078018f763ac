"""Type stubs of the compiled module gradlens._gradlens (the package's public API is in
gradlens/__init__.py)."""

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

def load(path: str | Path, device: str = "cpu", weights: str = "stored") -> "Model": ...
def methods_json() -> str: ...

class Attribution:
    tokens: list[str]
    display: list[str]
    token_ids: list[int]
    scores: npt.NDArray[np.float32]
    map: Optional[npt.NDArray[np.float32]]
    target: dict[str, Any]
    target_score: float
    baseline_score: Optional[float]
    delta: Optional[float]
    warnings: list[str]
    method: str
    model: str
    elapsed_ms: float
    extras: dict[str, Any]
    generated_tokens: Optional[list[str]]
    generation: Optional[list[dict[str, Any]]]
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def to_html(self) -> str: ...

class Model:
    name: str
    architecture: str
    device: str
    is_causal: bool
    is_classifier: bool
    def info_json(self) -> str: ...
    def tokenize(self, text: str) -> list[int]: ...
    def attribute(self, texts: Sequence[str], method: str, options: Sequence[tuple[str, str]],
                  rules: Optional[Any] = None) -> list[Attribution]: ...
    def generate_and_attribute(self, prompt: str, n: int, stop_at_eos: bool, method: str,
                               options: Sequence[tuple[str, str]]) -> Attribution: ...
    def evaluate(self, text: str, names: Sequence[str],
                 options: Sequence[tuple[str, str]]) -> str: ...
