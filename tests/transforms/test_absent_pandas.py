import importlib.abc
import sys

import pyarrow as pa
import pytest

from hybridmix.transforms import absent_pandas


class _Spy(importlib.abc.MetaPathFinder):
    """Counts the lookups of pandas that reach the finders behind it."""

    def __init__(self) -> None:
        self.pandas = 0

    def find_spec(self, name, path=None, target=None):
        self.pandas += name == "pandas"
        return None


@pytest.fixture
def finders(monkeypatch):
    """sys.meta_path without hybridmix's finder, restored after the test."""
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, absent_pandas._Absent)])
    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    return sys.meta_path


def test_without_pandas_its_lookups_stop_before_the_path_is_scanned(finders):
    if absent_pandas.importlib.util.find_spec("pandas") is not None:
        pytest.skip("pandas is installed here: the finder is not used")
    spy = _Spy()
    finders.insert(0, spy)
    pa.array([1, 2])
    assert spy.pandas > 0  # pyarrow asks for pandas on an ordinary call
    absent_pandas.install()
    spy.pandas = 0
    pa.array([1, 2]).to_numpy(zero_copy_only=False)
    assert spy.pandas == 0
    with pytest.raises(ModuleNotFoundError):
        import pandas  # noqa: F401


def test_an_installed_pandas_is_left_alone(finders, monkeypatch, tmp_path):
    (tmp_path / "pandas").mkdir()
    (tmp_path / "pandas" / "__init__.py").write_text("FAKE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    absent_pandas.install()
    assert not any(isinstance(f, absent_pandas._Absent) for f in sys.meta_path)
    import pandas

    assert pandas.FAKE
