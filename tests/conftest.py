import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from hybridmix.pipelines.cli import DEFAULT_RUNNER

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def local_pipeline() -> TestPipeline:
    """A TestPipeline on the in-process runner: DirectRunner would try to download Prism."""
    return TestPipeline(options=PipelineOptions([f"--runner={DEFAULT_RUNNER}"]))


@pytest.fixture
def shared_data() -> str:
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data is not present (fresh clone); the core suite does not need it")
    return SHARED_DATA


@pytest.fixture
def slow_writer(monkeypatch):
    """Spill files written behind (`storage.write_buffers_behind`) take 0.2 s each, as on a busy disk:
    whatever reads them too early finds them missing."""
    import time

    from hybridmix.transforms import storage

    write = storage.write_buffers

    def write_slowly(path, buffers):
        time.sleep(0.2)
        write(path, buffers)

    monkeypatch.setattr(storage, "write_buffers", write_slowly)
