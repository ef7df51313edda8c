// Peak growth of live memory (heap + array buffers, collected before each sample so garbage not
// yet collected does not count) while some work runs. For "memory stays bounded" tests: compare
// against a bound far from both the streaming and the buffering figures, never a timing.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export function liveMemorySampler(intervalMs = 20): { stop(): number } {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const base = process.memoryUsage();
  let peak = 0;
  const sample = () => {
    gc();
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed - base.heapUsed + (m.arrayBuffers - base.arrayBuffers));
  };
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
