/** Models the views watch: `emit()` after a change, `useModel(model)` re-renders on it. */

import { useEffect, useState } from "preact/hooks";

export class Observable {
  readonly #listeners = new Set<() => void>();
  /** Bumped on every change, so a view can tell that something changed. */
  version = 0;

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(): void {
    this.version += 1;
    for (const listener of [...this.#listeners]) listener();
  }
}

/** Re-render the calling component whenever `model` emits; returns the model. */
export function useModel<M extends Observable | undefined>(model: M): M {
  const [, setVersion] = useState(0);
  useEffect(() => {
    if (!model) return undefined;
    setVersion(model.version);
    return model.subscribe(() => setVersion(model.version));
  }, [model]);
  return model;
}
