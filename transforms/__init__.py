# Every process that runs hybridmix's transforms imports this package first, Beam's worker
# processes included (they have no other start-up hook), so each starts handing freed memory back
# to the operating system, and collects cyclic garbage less often, here (transforms/memory.py),
# pickles Arrow batches as IPC streams (transforms/wire.py), and answers Beam's repeated question whether
# a DoFn keeps state once per DoFn (transforms/dofn_specs.py), and makes pyarrow's repeated
# lookups of pandas, where it is not installed, cheap (transforms/absent_pandas.py).
from hybridmix.transforms import absent_pandas, dofn_specs, wire
from hybridmix.transforms.memory import collect_less, return_freed_memory

absent_pandas.install()
return_freed_memory()
collect_less()
wire.register()
dofn_specs.install()
