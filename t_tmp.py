import time, resource, torch, sys
torch.set_num_threads(2)
import os; os.environ["HF_HUB_OFFLINE"]="1"
from animate.renderer import Renderer
from animate.spec import spec_from_fields
r = Renderer(device="cpu")
frames = int(sys.argv[1])
spec = spec_from_fields(dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=2, guidance=1.0, width=64, height=64, prompt="x", frames=frames, loop=True))[0]
t=time.time(); res = r.render(spec)
print(frames, res.frames.shape, round(time.time()-t,1), "s", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, "MB", res.info["loop_closure"], len(res.info["context"]["windows"]))
