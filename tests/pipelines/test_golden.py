"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "9cdeaa8a23a04c832d2be21a1d46afe487b51fc807738cbdb0e26556ee39047b",
    "data/train-00001-of-00002.parquet": "865fb3b4e7dfbdfdcd058c65bcded68a4264888e812f3cd5a795df1db0489e5a",
    "data/validation-00000-of-00001.parquet": "8a033ff36f9d39ca6ca050b0bce3bc97651ad93042d2ef1363deff38fed98b34",
    "duplicates/part-00000-of-00001.parquet": "c6d758d95aa86e669e15fbb1fa92a22289cf1494f53187dff2e02619f75a7a66",
    "filtered/part-00000-of-00001.parquet": "ce0df33b4d11d4a84b0af73944cf82c7962f9a172e0ea70fa6dba1a3b71ad8bc",
    "index/part-00000-of-00003.parquet": "f3ebc85ee460a06f68e12b9c6a705a25556d7f9fa8f2f151e7f8bf334cb88bc4",
    "index/part-00001-of-00003.parquet": "c3777464a0c7f62619c276742a2013bc05a8493c804b7e84b26b88073a85aa71",
    "index/part-00002-of-00003.parquet": "b2aa6239356652ab656f72a0ebc40c68f9384b2c3fe96eb3938ad430cf6e93ec",
    "ledger/part-00000-of-00001.parquet": "648fa3479983ca31dcbf379409b7650cf97596479c31da2919fc59f883aa2ce0",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger", "index"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden"]) == 0
    assert _digests(out) == DEMO_FILES
