from data_platform.raw import SPECIES, write_raw_iris


def test_raw_file_has_uci_iris_format(tmp_path):
    path = write_raw_iris(tmp_path / "raw" / "iris.data")
    lines = path.read_text().split("\n")
    rows = [line for line in lines if line]
    assert len(rows) == 150
    assert lines[-1] == "" and lines[-2] == ""  # UCI's file ends with a blank line
    assert rows[0] == "5.1,3.5,1.4,0.2,Iris-setosa"
    fields = [row.split(",") for row in rows]
    assert all(len(f) == 5 for f in fields)
    assert {f[4] for f in fields} == set(SPECIES)
    assert all(sum(f[4] == s for f in fields) == 50 for s in SPECIES)
