import { useMemo } from "react";

// A context's value: the same object for as long as each of its fields is the same, so its
// consumers render again only when something in it changed. Every field is a dependency
// (the object's fields must not change from one render to the next, only their values).
export function useMemoObject<T extends Record<string, unknown>>(value: T): T {
  return useMemo(() => value, Object.values(value));
}
