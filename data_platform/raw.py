"""The raw input: iris in the UCI `iris.data` format, produced from the copy scikit-learn ships (no download)."""

from __future__ import annotations

import csv
from importlib.util import find_spec
from pathlib import Path

SAMPLE_DATASET = "iris"  # the dataset whose raw file this module can write (contracts/iris.yaml)
SPECIES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


def _iris_rows() -> list[tuple[list[float], int]]:
    """The 150 (measurements, class) rows of scikit-learn's iris.csv, read the way `load_iris` reads them but
    without importing scikit-learn (~2 s, most of the ETL's time for 150 rows on a fresh state)."""
    spec = find_spec("sklearn")  # locates the package without importing it
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "iris.csv" if spec else None
    if data is None or not data.is_file():  # another layout: the public loader
        from sklearn.datasets import load_iris  # not at import: the ETL imports this module on the cluster too

        iris = load_iris()
        return [(list(map(float, row)), int(t)) for row, t in zip(iris.data, iris.target, strict=True)]
    with data.open(newline="") as f:
        lines = csv.reader(f)
        next(lines)  # n_samples, n_features, class names
        return [([float(v) for v in line[:-1]], int(line[-1])) for line in lines]


def write_raw_iris(path: str | Path) -> Path:
    """Write the 150 iris rows as UCI does: no header, 4 measurements then the class, a blank last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(f"{v:.1f}" for v in row) + f",{SPECIES[target]}" for row, target in _iris_rows()]
    path.write_text("\n".join(lines) + "\n\n")
    return path
