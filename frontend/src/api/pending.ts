// JSON shapes of endpoints the web app uses that are not (yet) in the generated API types:
// to be folded into them once the backend's OpenAPI document describes these endpoints.
// Until then the app copes with the 404 of an endpoint the server does not have.

/** `GET /api/me`: who I am. Today `role` is "user" or "admin"; `roles` is the list form of
 * the user-management contract below (either may be present). */
export interface Me {
  user_id: string;
  username: string;
  role?: string;
  roles?: string[];
}

/** `GET /api/me/subsonic` and `POST /api/me/subsonic/rotate`: my Subsonic app credentials. */
export interface SubsonicCredentials {
  username: string;
  /** The app password (what a Subsonic app sends as `p`, or hashes into `t` + `s`). */
  password: string;
  /** The OpenSubsonic API key (`apiKey=`). */
  api_key: string;
  updated_at: number;
  /** Path of the Subsonic API under the server's URL ("/rest"). */
  path: string;
}

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
