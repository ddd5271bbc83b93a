/** A tiny observable store: the state is replaced, never mutated, so Preact re-renders on identity. */
import { useEffect, useState } from "preact/hooks";

export class Store<S> {
  private listeners = new Set<(state: S) => void>();

  constructor(private state: S) {}

  get(): S {
    return this.state;
  }

  update(change: (state: S) => S): void {
    const next = change(this.state);
    if (next === this.state) return;
    this.state = next;
    for (const listener of this.listeners) listener(next);
  }

  subscribe(listener: (state: S) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export function useStore<S>(store: Store<S>): S {
  const [state, setState] = useState(store.get());
  useEffect(() => {
    setState(store.get());
    return store.subscribe(setState);
  }, [store]);
  return state;
}
