# Every process that runs hybridmix's transforms imports this package first, Beam's worker
# processes included (they have no other start-up hook), so each starts handing freed memory back
# to the operating system, and collects cyclic garbage less often, here (transforms/memory.py),
# and pickles Arrow batches as IPC streams (transforms/wire.py).
from hybridmix.transforms import wire
from hybridmix.transforms.memory import collect_less, return_freed_memory

return_freed_memory()
collect_less()
wire.register()
