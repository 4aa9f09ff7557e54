import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/*
 * A full garbage collection on request, for the few points where a large structure has just
 * been replaced and the process is about to allocate the next one: a layer index of millions
 * of entries leaves its growing columns behind when it is finished, the merged tree's build its
 * work columns, a mount the layer paths it released. V8 collects such (mostly off-heap) memory
 * only some allocations later, so a 2M-entry mount peaked with a few hundred MB of it still
 * resident beside the next structure. Used only past a size (the callers' thresholds), where
 * the tens of milliseconds of a collection are nothing beside the work that made the garbage.
 */

let gc: (() => void) | null | undefined;

/** Collects now when the runtime lets us (it always does on Node 20; silently nothing otherwise). */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      // --expose-gc at run time, then the `gc` a fresh context gets: no flag on the command line.
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}

/** Entries past which an index or tree leaves enough garbage to be worth a collection. */
export const COLLECT_AFTER_ENTRIES = 250_000;
