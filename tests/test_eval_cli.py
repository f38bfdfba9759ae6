import json
import subprocess
import sys
from pathlib import Path

import pytest

from firs.cli import main, parser

from .helpers import catalog_ids, transformed_copy


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ([], ["build"], ["search"], ["eval"], ["demo"]):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: firs" in capsys.readouterr().out


def test_eval_json(
    garment_index: Path, garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "q").mkdir()
    lines = ["query\tproduct_id"]
    for product_id in catalog_ids(garment_catalog)[:6]:
        transformed_copy(garment_catalog.parent / "img" / f"{product_id}.png", tmp_path / "q" / f"{product_id}.jpg")
        lines.append(f"q/{product_id}.jpg\t{product_id}")
    queries = tmp_path / "queries.tsv"
    queries.write_text("\n".join(lines) + "\n")
    code = main(
        ["eval", "--index", str(garment_index), "--queries", str(queries), "--mode", "simple", "--json", "--quiet"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    simple = report["simple"]
    assert simple["n_queries"] == 6
    assert simple["recall@1"] == 1.0 and simple["recall@20"] == 1.0 and simple["mAP"] == 1.0
    assert set(simple["timings_ms"]) == {"decode", "embed", "search", "total"}
    assert set(simple["timings_ms"]["total"]) == {"p50", "p95"}


def test_eval_rejects_bad_queries_file(garment_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = tmp_path / "queries.tsv"
    queries.write_text("image\tid\nq.jpg\tx\n")
    assert main(["eval", "--index", str(garment_index), "--queries", str(queries)]) == 2
    assert "header must be" in capsys.readouterr().err
    queries.write_text("query\tproduct_id\nq.jpg\tnot-a-product\n")
    assert main(["eval", "--index", str(garment_index), "--queries", str(queries)]) == 2
    assert "queries.tsv:2: product 'not-a-product' is not indexed" in capsys.readouterr().err


def test_errors_exit_nonzero_with_a_message(
    garment_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "note.jpg"
    text.write_text("hello")
    assert main(["search", str(text), "--index", str(garment_index)]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["build", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "i")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def test_output_cut_short_by_its_reader_ends_quietly() -> None:
    """`firs ... | head -1`: the reader goes away; no "internal error", the exit status a shell gives SIGPIPE."""
    script = (
        "import sys; from firs import cli\n"
        "cli.COMMANDS['demo'] = lambda args: [print('line', n) for n in range(200_000)] and 0\n"
        "sys.exit(cli.main(['demo']))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline().startswith(b"line 0")
    process.stdout.close()
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 141 and b"error" not in errors, errors
