"""A real client against the API's own schema: schemathesis (`st run --checks all`) over the
served OpenAPI document, bounded to a few minutes.

What the schema cannot say is stated in tests/schemathesis.toml: a photo search with bytes
that are no image is refused (415/422) though "binary" admits any bytes, and a filter naming
a field no product has is refused (422) though it has the FIELD=VALUE shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from firs.search.engine import SearchEngine
from firs.service.app import ServiceOptions, create_app
from firs.vision.embedder import Embedder

from .helpers import served

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_no_contract_violation(garment_index: Path, embedder: Embedder, tmp_path: Path) -> None:
    # The admin API on, so that its routes are in the schema too; schemathesis has no key, and
    # every admin call it makes must be refused as the schema says (tests/schemathesis.toml).
    options = ServiceOptions(admin_key="contract-test-admin-key")
    app = create_app(SearchEngine(garment_index, embedder), options, follow=garment_index)
    with served(app) as url:
        command = [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "50",
            "--workers",
            "1",
            "--seed",
            "20261128",
        ]
        env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "failures" not in run.stdout.splitlines()[-1] or " 0 failures" in run.stdout.splitlines()[-1]
