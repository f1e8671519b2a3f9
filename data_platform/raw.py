"""The raw input: iris in the UCI `iris.data` format, produced from the copy scikit-learn ships (no download)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATASET = "iris"  # the dataset whose raw file this module can write (contracts/iris.yaml)
SPECIES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


def write_raw_iris(path: str | Path) -> Path:
    """Write the 150 iris rows as UCI does: no header, 4 measurements then the class, a blank last line."""
    from sklearn.datasets import load_iris  # not at import: the ETL imports this module on the cluster too

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    rows = zip(iris.data, iris.target, strict=True)
    lines = [",".join(f"{v:.1f}" for v in row) + f",{SPECIES[target]}" for row, target in rows]
    path.write_text("\n".join(lines) + "\n\n")
    return path
