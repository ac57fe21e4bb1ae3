"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

import pytest

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "88b56297813a18d9a82945355f6a4a5145ad4f8153a829f1dc498b5d73500f8f",
    "data/train-00001-of-00002.parquet": "df5fa5eb854ac6f1574cd0f85bbba3e7c36a4f44c35b1dd168027823b47f4a4e",
    "data/validation-00000-of-00001.parquet": "2d5fc7ab2052c9ffd1484ec094a7e90355ef159256472a5fd4383e236d7119b3",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "fe35f749b6190cb00913a8f7118f3390d74606ba64195a3523b6f32dda4f66ad",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "5bfc328efc89fb620d5b2fa41856262866f045ecc85b3f0fa46b2828250804f6",
    "index/part-00000-of-00003.parquet": "25021d934f710d664e17f73e61be954dec4d9de88db3296ab073a7e3921cdd46",
    "index/part-00001-of-00003.parquet": "37135769598d6930d632de5ec3d37bc5196c2a3d0cc1758d6e7efb6f0c6b360c",
    "index/part-00002-of-00003.parquet": "39a940870ce58b1f4cd9f23a9c82b1c665a4e69ddebff3f45f05848a15143106",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger", "index"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


# The compiled kernels run on threads over runs of texts; the output must not depend on how many.
@pytest.mark.parametrize("threads", [[], ["--kernel-threads", "1"], ["--kernel-threads", "3"]],
                         ids=["default", "one-thread", "three-threads"])
def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path, threads):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden",
                 *threads]) == 0
    assert _digests(out) == DEMO_FILES
