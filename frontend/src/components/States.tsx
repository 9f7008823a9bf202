// Loading, error, not-found and empty states, and the pager, shared by every view.
import type { ReactNode } from "react";
import { ApiError } from "../api/client";
import { Link } from "../app/router";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function ErrorBox({
  error,
  onRetry,
}: {
  error: ApiError | Error | string;
  onRetry?: () => void;
}) {
  const text =
    typeof error === "string"
      ? error
      : "detail" in error && error.detail
        ? error.detail
        : error.message;
  return (
    <div className="state error" role="alert">
      <p>Something went wrong: {text}</p>
      {onRetry && (
        <button type="button" className="text-button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** A page for something that does not exist: a heading that says what, and a way on. */
export function NotFound({
  title = "Not found",
  back = { to: "/", label: "Back to the library" },
  children,
}: {
  title?: string;
  back?: { to: string; label: string };
  children?: ReactNode;
}) {
  return (
    <section className="state not-found" aria-labelledby="not-found-h">
      <h1 id="not-found-h">{title}</h1>
      <p>{children ?? "There is nothing at this address."}</p>
      <Link to={back.to} className="secondary">
        {back.label}
      </Link>
    </section>
  );
}

/** The failure of a page's load: a not-found page for a 404 (say, an id that does not exist
 * or no longer does), else the error with a retry. */
export function LoadFailed({
  error,
  onRetry,
  notFound,
}: {
  error: ApiError | Error;
  onRetry?: () => void;
  notFound: { title: string; text: string; back: { to: string; label: string } };
}) {
  if (error instanceof ApiError && error.status === 404) {
    return (
      <NotFound title={notFound.title} back={notFound.back}>
        {notFound.text}
      </NotFound>
    );
  }
  return <ErrorBox error={error} onRetry={onRetry} />;
}

// A form's error under its fields (nothing without one), read out as soon as it shows.
export function FormError({ error }: { error: string | null | undefined }) {
  if (!error) return null;
  return (
    <p className="form-error" role="alert">
      {error}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

export function Pager({
  page,
  limit,
  total,
  onPage,
}: {
  page: number;
  limit: number;
  total: number;
  onPage: (p: number) => void;
}) {
  const pages = Math.max(1, Math.ceil(total / limit));
  if (pages <= 1) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button
        type="button"
        className="text-button"
        onClick={() => onPage(page - 1)}
        disabled={page <= 1}
        aria-label="Previous page"
      >
        ‹ Previous
      </button>
      <span aria-live="polite">
        Page {page} of {pages}
      </span>
      <button
        type="button"
        className="text-button"
        onClick={() => onPage(page + 1)}
        disabled={page >= pages}
        aria-label="Next page"
      >
        Next ›
      </button>
    </nav>
  );
}
