import { useState } from "react";
import { errorText } from "../api/client";

// One action of a form or a button: `busy` while it runs (to disable the button), `error`
// what its last failure said in words (`describe`), cleared when it runs again.
export function useAction(describe: (e: unknown) => string = errorText) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (action: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}
