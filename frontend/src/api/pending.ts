// JSON shapes of endpoints the web app uses that are not (yet) in the generated API types:
// to be folded into them once the backend's OpenAPI document describes these endpoints.
// Until then the app copes with the 404 of an endpoint the server does not have. Shapes the
// server does serve come from the generated ./schema.ts.
import type { components } from "./schema";

/** `GET /api/me`: who I am, as the API describes it (generated), plus `roles`, the list form
 * of the user-management contract below (not served yet). */
export type Me = components["schemas"]["Me"] & { roles?: string[] };

/** `GET /api/me/subsonic` and `POST /api/me/subsonic/rotate`: my Subsonic app credentials
 * (served: the generated shape). */
export type SubsonicCredentials = components["schemas"]["SubsonicCredentials"];

// -- user management (not served yet; the contract the UI is written against) -----------------
//
// GET  /api/users                 (admin) → {"users": [UserRow, ...]}
// PATCH /api/users/{id}           (admin) {"roles"?: string[], "disabled"?: boolean} → UserRow
// POST /api/users/{id}/password   (admin) {"password"} → 204
// POST /api/auth/logout           revokes the presented token → 204
// POST /api/me/password           {"old", "new"} → 204; revokes every token of the user

/** One row of `GET /api/users`. `roles` holds "admin" for an admin (and "user"). */
export interface UserRow {
  id: string;
  username: string;
  roles: string[];
  disabled: boolean;
  /** Milliseconds since the epoch, as the catalog's other `created_at`. */
  created_at: number;
}

export interface UserList {
  users: UserRow[];
}

export interface UserPatch {
  roles?: string[];
  disabled?: boolean;
}

// -- Subsonic play queue (`getPlayQueue` / `savePlayQueue`, JSON form) --------------------------

/** One `entry` of a Subsonic `playQueue` (a "child"; only the fields the app reads). */
export interface SubsonicChild {
  id: string;
  title?: string;
}

/** The `playQueue` element: `position` in milliseconds, `changed` an ISO 8601 time. */
export interface SubsonicPlayQueue {
  entry?: SubsonicChild[];
  current?: string;
  position?: number;
  username?: string;
  changed?: string;
  changedBy?: string;
}
