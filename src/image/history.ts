import type { HistoryStep, ImageConfig } from './model';

/**
 * Pairs build steps with layers: the n-th step without `empty_layer` made the n-th layer. Images
 * from other builders break the rule (no history, squashed layers); then the pairing stops where
 * it runs out and a warning says so, rather than guessing.
 */
export function mapHistory(config: ImageConfig, layerCount: number): { steps: HistoryStep[]; warning?: string } {
  const raw = Array.isArray(config.history) ? config.history : [];
  let next = 0;
  const steps = raw.map((h): HistoryStep => {
    const emptyLayer = h?.empty_layer === true;
    const step: HistoryStep = {
      created: typeof h?.created === 'string' ? h.created : undefined,
      createdBy: typeof h?.created_by === 'string' ? h.created_by : undefined,
      comment: typeof h?.comment === 'string' ? h.comment : undefined,
      emptyLayer,
    };
    if (!emptyLayer) {
      if (next < layerCount) step.layer = next;
      next++;
    }
    return step;
  });
  const warning =
    raw.length === 0 && layerCount > 0
      ? 'the config has no history: layers have no build steps'
      : next !== layerCount
        ? `history has ${next} non-empty steps for ${layerCount} layers: steps and layers may not line up`
        : undefined;
  return { steps, warning };
}

/** The step that made layer `position`, if the history names one. */
export function stepForLayer(steps: HistoryStep[], position: number): HistoryStep | undefined {
  return steps.find((s) => s.layer === position);
}
