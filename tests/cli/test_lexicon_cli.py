"""`dsgkd lexicon`: notes and a corpus in, a file `--selector lexicon:FILE` takes out; bad input is one line."""
import pandas as pd
import pytest

from dsgkd.cli.main import main
from dsgkd.core.align import find_terms
from dsgkd.data.benchmark import write_benchmark
from dsgkd.data.synthetic import generate_domain_corpus, write_table


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lexicon")
    paths = write_benchmark(folder, {"train": 300, "transfer": 500})
    write_table(pd.DataFrame({"TEXT": generate_domain_corpus(4000, seed=0)}), folder / "domain.csv")
    return folder, paths


def test_the_cli_writes_a_lexicon_the_selector_reads(files, capsys):
    from dsgkd.config import DistillConfig

    folder, paths = files
    out, explain = folder / "terms.txt", folder / "terms.tsv"
    assert main(["lexicon", "--notes", f"{paths['train']},{paths['transfer']}", "--text-col", "ER_DHX",
                 "--corpus", str(folder / "domain.csv"), "--corpus-col", "TEXT", "--out", str(out),
                 "--explain", str(explain)]) == 0
    assert f"lexicon:{out}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").startswith("# dsgkd lexicon: ")
    DistillConfig(selector=f"lexicon:{out}")
    note = "생후 5개월 남아, r/o Kawasaki disease, sepsis로 전원. BT 38.5/HR 150, SpO2 97%"
    assert [note[a:b] for a, b in find_terms(note, f"lexicon:{out}")] == ["Kawasaki disease", "sepsis"]
    table = pd.read_csv(explain, sep="\t")
    assert {"unit", "kept", "note_docs", "corpus_docs", "contrast", "fixed"} <= set(table.columns)
    assert table.loc[table.unit == "BT", "kept"].item() == 0


@pytest.mark.parametrize("argv, message", [
    (["--notes", "{train}", "--text-col", "TEXT", "--corpus", "{corpus}"], "train.csv: no column 'TEXT'"),
    (["--notes", "{train}", "--text-col", "ER_DHX", "--corpus", "{corpus}"], "domain.csv: no column 'ER_DHX'"),
    (["--notes", "{folder}/nope.csv", "--text-col", "ER_DHX", "--corpus", "{corpus}"], "nope.csv: no such file"),
])
def test_bad_input_is_one_line_naming_the_file_and_column(files, capsys, argv, message):
    folder, paths = files
    fill = {"train": paths["train"], "corpus": folder / "domain.csv", "folder": folder}
    code = main(["lexicon", *(a.format(**fill) for a in argv), "--out", str(folder / "x.txt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and err.startswith("dsgkd lexicon: error:")
    assert not (folder / "x.txt").exists()
